"""The agent store: one interface over SQLite and PostgreSQL (SQLAlchemy async Core).

Agents and their memory blocks, paginated history, and `turn()`, which hands a turn
a session under the conversation's lock (`locking.py`). The writes of a running turn
live in `turns.py`. Every method borrows a pooled connection for one statement or
one transaction, never longer; a saturated pool is `StoreBusy` (`busy.py`).
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway import errors
from gateway.agents import engine as engine_mod
from gateway.agents import queries as q
from gateway.agents import tables as t
from gateway.agents.busy import store_errors
from gateway.agents.locking import TurnLocks, TurnSlots, WriteGate, lock_key
from gateway.agents.schemas import AgentRecord, Block, StoredMessage
from gateway.agents.turns import TurnSession, message_from_row

log = logging.getLogger("gateway.agents")


class StoreUnavailable(RuntimeError):
    """The store cannot be opened (unreachable server, bad credentials, unwritable file)."""


class AgentStore:
    def __init__(self, url: str, pool_size: int = 10) -> None:
        self.url = engine_mod.async_url(url)
        # As the user wrote it, password masked, for messages.
        self._shown_url = make_url(url).render_as_string(hide_password=True)
        self.engine = engine_mod.create_engine(self.url, pool_size)
        self.writer = engine_mod.writer(self.engine)
        self.reader = engine_mod.reader(self.engine)
        self.dialect = self.url.get_backend_name()
        self.locks = TurnLocks(self.url, engine_mod.sqlite_path(self.url))
        self.gate = WriteGate(self.dialect)
        self.turn_slots = TurnSlots(pool_size, engine_mod.TURN_SLOT_TIMEOUT)

    async def open(self) -> None:
        """Apply pending migrations (the store is usable after this)."""
        try:
            revision = await engine_mod.migrate(self.engine)
        except Exception as exc:
            raise self._unavailable(exc) from None
        log.info("agent store %s at schema revision %s", self.dialect, revision)

    async def check(self) -> None:
        """Connect once (no migrations): `StoreUnavailable` naming the URL if that fails."""
        try:
            await self.ping()
        except Exception as exc:
            raise self._unavailable(exc) from None

    def _unavailable(self, exc: Exception) -> StoreUnavailable:
        # The driver's own error, on one line (SQLAlchemy appends a help link).
        cause = getattr(exc, "orig", None) or exc
        cause = cause.__cause__ or cause  # the driver's own exception under the adapter's
        detail = (str(cause).strip().splitlines() or [""])[0]
        return StoreUnavailable(
            f"the agent store {self._shown_url} cannot be opened: {type(cause).__name__}: {detail}"
        )

    async def close(self) -> None:
        await self.locks.close()
        await self.engine.dispose()

    async def ping(self) -> None:
        async with self.read() as conn:
            await conn.execute(text("SELECT 1"))

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A pooled connection for reads (no transaction); `StoreBusy` if none comes free."""
        async with store_errors(), self.reader.connect() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction on a pooled connection; `StoreBusy` if none comes free."""
        async with store_errors(), self.gate, self.writer.begin() as conn:
            yield conn

    # -- agents --------------------------------------------------------------------

    async def create_agent(self, values: Mapping[str, Any], blocks: Sequence[Block]) -> AgentRecord:
        now = time.time()
        row = {**values, "id": f"agent-{uuid.uuid4().hex}", "created_at": now, "updated_at": now}
        try:
            async with self.write() as conn:
                await conn.execute(insert(t.agents).values(row))
                await _insert_blocks(conn, row["id"], blocks)
        except IntegrityError:
            raise _exists(str(values["name"])) from None
        return await self.get_agent(row["id"])

    async def list_agents(self) -> list[AgentRecord]:
        async with self.read() as conn:
            rows = (await conn.execute(select(t.agents).order_by(t.agents.c.created_at))).all()
            blocks = await _blocks_of(conn, None)
        return [_agent(r._mapping, blocks.get(r.id, ())) for r in rows]

    async def get_agent(self, ref: str, *, blocks: bool = True) -> AgentRecord:
        """By id or by name (an id wins if one agent's name is another's id)."""
        async with self.read() as conn:
            return await _get_agent(conn, ref, blocks)

    async def agent_for_turn(self, ref: str) -> AgentRecord:
        """The agent's settings for a turn; its memory the turn reads in its own transaction.

        Queued with the turns' transactions (`TurnSlots`): a burst of turns then never
        holds up other readers.
        """
        async with self.turn_slots, self.read() as conn:
            return await _get_agent(conn, ref, False)

    async def update_agent(
        self, agent_id: str, values: Mapping[str, Any], blocks: Sequence[Block] | None
    ) -> AgentRecord:
        try:
            async with self.write() as conn:
                result = await conn.execute(
                    update(t.agents)
                    .where(t.agents.c.id == agent_id)
                    .values({**values, "updated_at": time.time()})
                )
                if result.rowcount == 0:
                    raise errors.AgentNotFound(f"agent '{agent_id}' does not exist")
                if blocks is not None:
                    await conn.execute(
                        delete(t.memory_blocks).where(t.memory_blocks.c.agent_id == agent_id)
                    )
                    await _insert_blocks(conn, agent_id, blocks)
        except IntegrityError:
            raise _exists(str(values.get("name"))) from None
        return await self.get_agent(agent_id)

    async def delete_agent(self, agent_id: str) -> None:
        async with self.write() as conn:
            await conn.execute(delete(t.agents).where(t.agents.c.id == agent_id))

    # -- history -------------------------------------------------------------------

    async def list_conversations(self, agent_id: str, *, limit: int) -> list[dict[str, Any]]:
        """An agent's conversations, most recently active first, with message counts."""
        c, m = t.conversations, t.messages
        last = func.max(m.c.created_at)
        query = (
            select(c.c.key, c.c.created_at, func.count(m.c.id).label("messages"), last)
            .select_from(c.outerjoin(m, m.c.conversation_id == c.c.id))
            .where(c.c.agent_id == agent_id)
            .group_by(c.c.id, c.c.key, c.c.created_at)
            .order_by(func.coalesce(last, c.c.created_at).desc(), c.c.id.desc())
            .limit(limit)
        )
        async with self.reader.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            {
                "id": row[0],
                "created_at": row[1],
                "message_count": row[2],
                "last_message_at": row[3],
            }
            for row in rows
        ]

    async def list_messages(
        self,
        agent_id: str,
        conversation: str,
        *,
        limit: int,
        before: int | None = None,
        after: int | None = None,
    ) -> tuple[list[StoredMessage], bool]:
        """One page in chronological order, and whether more lie beyond it.

        Without a cursor the page is the newest `limit` messages; `before` pages back
        from a message id, `after` forward from one.
        """
        m = t.messages
        query = (
            select(m)
            .join(t.conversations, t.conversations.c.id == m.c.conversation_id)
            .where(t.conversations.c.agent_id == agent_id, t.conversations.c.key == conversation)
            .limit(limit + 1)
        )
        if after is not None:
            query = query.where(m.c.id > after).order_by(m.c.id)
        else:
            if before is not None:
                query = query.where(m.c.id < before)
            query = query.order_by(m.c.id.desc())
        async with self.read() as conn:
            rows = (await conn.execute(query)).all()
        more = len(rows) > limit
        page = [message_from_row(r, conversation) for r in rows[:limit]]
        if after is None:
            page.reverse()
        return page, more

    # -- turns ---------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def turn(self, agent_id: str, conversation: str) -> AsyncIterator[TurnSession]:
        """A session for one turn, holding the conversation's lock until it ends.

        Neither waiting for the lock nor holding it takes a pooled connection: the
        session borrows one per transaction.
        """
        async with self.locks.hold(lock_key(agent_id, conversation)) as lease:
            gates = (self.turn_slots, self.gate)
            yield TurnSession(self.writer, gates, lease, agent_id, conversation)


def _exists(name: str) -> errors.AgentExists:
    return errors.AgentExists(f"an agent named '{name}' already exists", param="name")


async def _get_agent(conn: AsyncConnection, ref: str, blocks: bool) -> AgentRecord:
    rows = (await conn.execute(q.AGENT, {"ref": ref})).all()
    if not rows:
        raise errors.AgentNotFound(f"agent '{ref}' does not exist", param="agent")
    row = next((r for r in rows if r.id == ref), rows[0])
    found = await _blocks_of(conn, row.id) if blocks else {}
    return _agent(row._mapping, found.get(row.id, ()))


async def _insert_blocks(conn: AsyncConnection, agent_id: str, blocks: Sequence[Block]) -> None:
    if not blocks:
        return
    rows = [
        {"agent_id": agent_id, "label": b.label, "value": b.value, "limit": b.limit, "position": i}
        for i, b in enumerate(blocks)
    ]
    await conn.execute(insert(t.memory_blocks), rows)


async def _blocks_of(conn: AsyncConnection, agent_id: str | None) -> dict[str, list[Block]]:
    query = select(t.memory_blocks).order_by(t.memory_blocks.c.position)
    if agent_id is not None:
        query = query.where(t.memory_blocks.c.agent_id == agent_id)
    out: dict[str, list[Block]] = {}
    for row in (await conn.execute(query)).all():
        out.setdefault(row.agent_id, []).append(Block(row.label, row.value, row.limit))
    return out


def _agent(row: Any, blocks: Sequence[Block]) -> AgentRecord:
    return AgentRecord(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        model=row["model"],
        system=row["system"],
        memory_blocks=tuple(blocks),
        tools=tuple(row["tools"]),
        mcp_servers=tuple(row["mcp_servers"]),
        context_window_limit=row["context_window_limit"],
        max_tokens=row["max_tokens"],
        max_reasoning_tokens=row["max_reasoning_tokens"],
        enable_reasoner=bool(row["enable_reasoner"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
