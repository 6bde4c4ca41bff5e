"""The writes of one running turn, made while it holds its conversation's lock.

Each transaction borrows a pooled connection and gives it back at commit, so a turn
holds none while it waits on a model. A turn whose lock was lost meanwhile (its lock
connection dropped, `locking.Lease`) writes nothing more: `StoreBusy`, and the same
input sent again resumes it.

A turn starts in one transaction (conversation, replay or resume decision, the user's
input, memory and history) and then commits one transaction per step (the assistant
message, its tool results, the memory edits its tools made, the turn's counters).
Nothing is written outside those transactions, so the stored history never holds a
half step: after a failure it ends with the user's input or with a whole step.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway import errors
from gateway.agents import queries as q
from gateway.agents import tables as t
from gateway.agents.busy import store_errors
from gateway.agents.locking import Lease, TurnSlots, WriteGate
from gateway.agents.schemas import Block, StoredMessage, Usage


@dataclass
class TurnState:
    id: str
    created_at: float
    step_count: int
    usage: Usage
    # The turn's messages so far, its input first.
    messages: list[StoredMessage]
    status: str = "running"
    finish_reason: str = "stop"


@dataclass
class TurnStart:
    state: TurnState
    blocks: list[Block] = field(default_factory=list)
    history: list[StoredMessage] = field(default_factory=list)
    # Messages of the conversation before `history` (trimmed out of the context).
    evicted: int = 0
    # An Idempotency-Key matched a finished turn: nothing runs, its answer is returned.
    replay: bool = False


class TurnSession:
    def __init__(
        self,
        writer: AsyncEngine,
        gates: tuple[TurnSlots, WriteGate],
        lease: Lease,
        agent_id: str,
        conversation: str,
    ) -> None:
        self.writer = writer
        # Passed in order before each transaction (`locking.TurnSlots`, `WriteGate`).
        self.slots, self.gate = gates
        self.lease = lease
        self._conn: AsyncConnection | None = None
        self.agent_id = agent_id
        self.conversation = conversation
        self.conversation_id = 0
        self.context_start = 0
        self.next_seq = 0
        # (id, input hash) of the conversation's newest turn, if it did not finish.
        self._unfinished: tuple[str, str] | None = None

    @property
    def conn(self) -> AsyncConnection:
        """The connection of the transaction in progress (`_tx`)."""
        assert self._conn is not None, "the turn's statements run inside _tx()"
        return self._conn

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[None]:
        """A write transaction on a connection borrowed for its length."""
        if not self.lease.valid():
            raise errors.StoreBusy(
                "the conversation's lock was lost (the store connection dropped); "
                "send the same input again to resume the turn"
            )
        async with self.slots, store_errors(), self.gate, self.writer.begin() as conn:
            self._conn = conn
            try:
                yield
            finally:
                self._conn = None

    async def start(
        self, inputs: Sequence[StoredMessage], input_hash: str, key: str | None
    ) -> TurnStart:
        """Begin a new turn, resume a failed one with the same input, or find a replay."""
        async with self._tx():
            await self._open()
            previous = await self._previous_turn(input_hash, key)
            if previous is not None and previous.status == "done":
                state = await self._load_turn(previous)
                return TurnStart(state, await self._blocks(), replay=True)
            if previous is not None:
                state = await self._resume(previous)
            else:
                state = await self._new_turn(inputs, input_hash)
            if key is not None and (previous is None or previous.key is None):
                await self._save_key(key, state.id, input_hash)
            history = await self._history()
            blocks = await self._blocks()
        return TurnStart(state, blocks, history, evicted=self.context_start)

    @contextlib.asynccontextmanager
    async def step(self, state: TurnState, *, counts: bool = True) -> AsyncIterator[StepTx]:
        """One step's transaction; `state` learns of it only once it is committed.

        `counts=False` for what is not a model call (the step limit's closing message).
        """
        tx = StepTx(self, state, counts)
        try:
            async with self._tx():
                yield tx
                await tx.flush()
        except IntegrityError:
            # The rows the step refers to are gone: the agent was deleted mid-turn.
            if await self._agent_exists():
                raise
            raise errors.AgentNotFound(f"agent '{self.agent_id}' was deleted") from None
        tx.applied()

    async def _agent_exists(self) -> bool:
        query = select(t.agents.c.id).where(t.agents.c.id == self.agent_id)
        async with self._tx():
            return (await self.conn.execute(query)).first() is not None

    async def fail(self, state: TurnState, error: errors.GatewayError) -> None:
        async with self._tx():
            await self.conn.execute(
                q.UPDATE_TURN,
                {
                    "turn_id": state.id,
                    "status": "failed",
                    "error": error.body()["error"],
                    "finished_at": time.time(),
                },
            )

    # -- start helpers -------------------------------------------------------------

    async def _open(self) -> None:
        """Find or create the conversation, and where its history ends."""
        params = {"agent_id": self.agent_id, "key": self.conversation}
        row = (await self.conn.execute(q.CONVERSATION, params)).first()
        if row is None:
            try:
                self.conversation_id = await self._create_conversation()
            except IntegrityError:
                raise errors.AgentNotFound(f"agent '{self.agent_id}' was deleted") from None
            return
        self.conversation_id, self.context_start = row.id, row.context_start
        self.next_seq = 0 if row.last is None else row.last + 1
        if row.latest_id is not None and row.latest_status != "done":
            self._unfinished = (row.latest_id, row.latest_hash)

    async def _create_conversation(self) -> int:
        values = {
            "agent_id": self.agent_id,
            "key": self.conversation,
            "context_start": 0,
            "created_at": time.time(),
        }
        result = await self.conn.execute(q.NEW_CONVERSATION, values)
        return int(result.scalar_one())

    async def _previous_turn(self, input_hash: str, key: str | None) -> Any:
        """The turn this request continues: by its key, else a failed turn of this input."""
        if key is not None:
            params = {"agent_id": self.agent_id, "key": key}
            row = (await self.conn.execute(q.TURN_BY_KEY, params)).first()
            if row is not None:
                if row.request_hash != input_hash or row.conversation_id != self.conversation_id:
                    raise errors.IdempotencyKeyReused(
                        "this Idempotency-Key was used for a different request",
                        param="Idempotency-Key",
                    )
                return row
        # The newest turn failed, or is still "running" under our lock because the
        # process that ran it died: the same input again continues it.
        if self._unfinished is None or self._unfinished[1] != input_hash:
            return None
        row = (await self.conn.execute(q.TURN, {"turn_id": self._unfinished[0]})).first()
        if row is not None and (key is None or row.key is None):
            return row
        return None

    async def _new_turn(self, inputs: Sequence[StoredMessage], input_hash: str) -> TurnState:
        now = time.time()
        state = TurnState(f"turn-{uuid.uuid4().hex}", now, 0, Usage(), [])
        await self.conn.execute(
            q.NEW_TURN,
            {
                "id": state.id,
                "agent_id": self.agent_id,
                "conversation_id": self.conversation_id,
                "status": "running",
                "input_hash": input_hash,
                "step_count": 0,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "created_at": now,
            },
        )
        state.messages = await self._insert_messages(state.id, inputs)
        self.next_seq += len(inputs)
        return state

    async def _resume(self, row: Any) -> TurnState:
        state = await self._load_turn(row)
        state.status = "running"
        await self.conn.execute(
            q.UPDATE_TURN,
            {"turn_id": state.id, "status": "running", "error": None, "finished_at": None},
        )
        return state

    async def _load_turn(self, row: Any) -> TurnState:
        rows = (await self.conn.execute(q.TURN_MESSAGES, {"turn_id": row.id})).all()
        return TurnState(
            id=row.id,
            created_at=row.created_at,
            step_count=row.step_count,
            usage=Usage(row.prompt_tokens, row.completion_tokens),
            messages=[message_from_row(r, self.conversation) for r in rows],
            status=row.status,
            finish_reason=row.finish_reason or "stop",
        )

    async def _save_key(self, key: str, turn_id: str, input_hash: str) -> None:
        values = {
            "agent_id": self.agent_id,
            "key": key,
            "turn_id": turn_id,
            "request_hash": input_hash,
            "created_at": time.time(),
        }
        try:
            await self.conn.execute(q.NEW_KEY, values)
        except IntegrityError:
            # A turn of another conversation (another lock) took the key while ours
            # looked for it: the same key for a different request, as in `_previous_turn`.
            raise errors.IdempotencyKeyReused(
                "this Idempotency-Key is in use by a request in another conversation",
                param="Idempotency-Key",
            ) from None

    async def _history(self) -> list[StoredMessage]:
        params = {"conversation_id": self.conversation_id, "start": self.context_start}
        rows = await self.conn.execute(q.HISTORY, params)
        return [message_from_row(r, self.conversation) for r in rows]

    async def _blocks(self) -> list[Block]:
        rows = await self.conn.execute(q.BLOCKS, {"agent_id": self.agent_id})
        return [Block(r.label, r.value, r.limit) for r in rows]

    async def _insert_messages(
        self, turn_id: str, new: Sequence[StoredMessage]
    ) -> list[StoredMessage]:
        if not new:
            return []
        now = time.time()
        rows = [
            _row(m, self.agent_id, self.conversation_id, turn_id, self.next_seq + i, now)
            for i, m in enumerate(new)
        ]
        ids = (await self.conn.execute(q.NEW_MESSAGES, rows)).scalars().all()
        return [
            replace(
                m,
                id=int(i),
                turn_id=turn_id,
                seq=row["seq"],
                conversation=self.conversation,
                created_at=now,
            )
            for m, i, row in zip(new, ids, rows, strict=True)
        ]


class StepTx:
    """What a step may do inside its transaction: memory edits, search, its messages."""

    def __init__(self, session: TurnSession, state: TurnState, counts: bool = True) -> None:
        self.session = session
        self.state = state
        self.counts = counts
        self.pending: list[StoredMessage] = []
        self.usage = Usage()
        self.finish_reason: str | None = None
        self.context_start: int | None = None
        self._written: list[StoredMessage] = []

    @property
    def conn(self) -> AsyncConnection:
        return self.session.conn

    @property
    def written(self) -> list[StoredMessage]:
        """The step's messages as stored (ids and seqs set), once flushed."""
        return self._written

    async def block(self, label: str) -> Block | None:
        """A memory block, locked against other conversations' edits until commit."""
        b = t.memory_blocks
        query = (
            select(b)
            .where(b.c.agent_id == self.session.agent_id, b.c.label == label)
            .with_for_update()
        )
        row = (await self.conn.execute(query)).first()
        return Block(row.label, row.value, row.limit) if row is not None else None

    async def blocks(self) -> list[Block]:
        return await self.session._blocks()

    async def labels(self) -> list[str]:
        b = t.memory_blocks
        query = select(b.c.label).where(b.c.agent_id == self.session.agent_id)
        return list((await self.conn.execute(query.order_by(b.c.position))).scalars())

    async def set_block(self, label: str, value: str) -> None:
        b = t.memory_blocks
        await self.conn.execute(
            update(b)
            .where(b.c.agent_id == self.session.agent_id, b.c.label == label)
            .values(value=value)
        )

    async def search(self, words: Sequence[str], limit: int) -> list[StoredMessage]:
        """User and assistant messages of this conversation containing every word."""
        m = t.messages
        query = select(m).where(
            m.c.conversation_id == self.session.conversation_id,
            m.c.role.in_(("user", "assistant")),
            m.c.content.is_not(None),
        )
        for word in words:
            query = query.where(func.lower(m.c.content).like(f"%{_escape(word)}%", escape="\\"))
        query = query.order_by(m.c.seq.desc()).limit(limit)
        rows = (await self.conn.execute(query)).all()
        return [message_from_row(r, self.session.conversation) for r in rows]

    def add(self, message: StoredMessage) -> None:
        self.pending.append(message)

    async def flush(self) -> None:
        session, state = self.session, self.state
        self._written = await session._insert_messages(state.id, self.pending)
        values: dict[str, Any] = {
            "step_count": state.step_count + int(self.counts),
            "prompt_tokens": state.usage.prompt_tokens + self.usage.prompt_tokens,
            "completion_tokens": state.usage.completion_tokens + self.usage.completion_tokens,
        }
        if self.finish_reason is not None:
            values.update(status="done", finish_reason=self.finish_reason, finished_at=time.time())
        await self.conn.execute(q.UPDATE_TURN, {"turn_id": state.id, **values})
        if self.context_start is not None and self.context_start > session.context_start:
            params = {"conversation_id": session.conversation_id, "start": self.context_start}
            await self.conn.execute(q.UPDATE_CONTEXT_START, params)

    def applied(self) -> None:
        """The transaction committed: bring the in-memory state up to date."""
        session, state = self.session, self.state
        session.next_seq += len(self._written)
        if self.context_start is not None:
            session.context_start = max(session.context_start, self.context_start)
        state.messages.extend(self._written)
        state.step_count += int(self.counts)
        state.usage.add(self.usage.prompt_tokens, self.usage.completion_tokens)
        if self.finish_reason is not None:
            state.status, state.finish_reason = "done", self.finish_reason


def message_from_row(row: Any, conversation: str) -> StoredMessage:
    return StoredMessage(
        id=row.id,
        conversation=conversation,
        turn_id=row.turn_id,
        seq=row.seq,
        step=row.step,
        role=row.role,
        content=row.content,
        content_parts=row.content_parts,
        reasoning_content=row.reasoning_content,
        tool_calls=row.tool_calls,
        tool_call_id=row.tool_call_id,
        name=row.name,
        finish_reason=row.finish_reason,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        created_at=row.created_at,
        tokens=row.tokens,
    )


def _row(
    m: StoredMessage, agent_id: str, conversation_id: int, turn_id: str, seq: int, now: float
) -> dict[str, Any]:
    return {
        "conversation_id": conversation_id,
        "agent_id": agent_id,
        "turn_id": turn_id,
        "seq": seq,
        "step": m.step,
        "role": m.role,
        "content": m.content,
        "content_parts": m.content_parts,
        "reasoning_content": m.reasoning_content,
        "tool_calls": m.tool_calls,
        "tool_call_id": m.tool_call_id,
        "name": m.name,
        "finish_reason": m.finish_reason,
        "prompt_tokens": m.prompt_tokens,
        "completion_tokens": m.completion_tokens,
        "tokens": m.tokens,
        "created_at": now,
    }


def _escape(word: str) -> str:
    return word.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
