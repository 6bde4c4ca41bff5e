"""`AgentService`: what the facades call to manage agents and run their turns.

Both the HTTP facade (REST and `agent/<name>` models) and the MCP facade use it. A
turn runs in a task of its own, shielded from the caller: a client that goes away
mid-turn does not cancel it, and its reply is stored all the same. `close()` lets
running turns finish until the shutdown deadline before the store closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from typing import Any

import orjson

from gateway import checks, errors
from gateway.agents import context
from gateway.agents.calls import ModelCaller
from gateway.agents.loop import AgentLoop, StepFn, TurnOptions
from gateway.agents.schemas import (
    DEFAULT_CONVERSATION,
    AgentCreate,
    AgentRecord,
    AgentUpdate,
    Block,
    StoredMessage,
    TurnResult,
    check_blocks,
    parse,
)
from gateway.agents.store import AgentStore
from gateway.agents.tools import BUILTINS, ToolSource
from gateway.providers.base import CallRecord
from gateway.routing.router import Router
from gateway.settings import Settings

log = logging.getLogger("gateway.agents")

SEPARATOR = "__"  # MCP tools are offered as <server>__<tool>
MAX_KEY_LENGTH = 255
# How long cancelled turns get to record that they were interrupted.
CANCEL_GRACE_SECONDS = 5.0
# Called after a turn ends (metrics): the agent, and its step count.
TurnHook = Callable[[AgentRecord, TurnResult], None]
# Called when agents change (the MCP tool list follows): "created", "updated", "deleted".
AgentListener = Callable[[str, AgentRecord], None]

_END = object()
_NOT_NULL = (
    "name",
    "model",
    "system",
    "description",
    "enable_reasoner",
    "mcp_servers",
    "memory_blocks",
)


class AgentService:
    def __init__(
        self,
        store: AgentStore,
        router: Router,
        models: ModelCaller,
        settings: Settings,
        sources: Sequence[ToolSource] = (),
        *,
        on_turn: TurnHook | None = None,
    ) -> None:
        self.store = store
        self.router = router
        self.settings = settings
        self.loop = AgentLoop(router, models, settings.agent_max_steps, sources)
        self.on_turn = on_turn
        self._listeners: list[AgentListener] = []
        self._tasks: set[asyncio.Task[TurnResult]] = set()

    # -- agents --------------------------------------------------------------------

    async def create_agent(self, spec: AgentCreate | Mapping[str, Any]) -> AgentRecord:
        if not isinstance(spec, AgentCreate):
            spec = parse(AgentCreate, spec)
        check_blocks(spec.memory_blocks)
        model = spec.model or self.settings.default_model
        if not model:
            raise errors.InvalidRequest(
                "'model' is required: give the agent a model handle, or set GATEWAY_DEFAULT_MODEL",
                param="model",
            )
        values = spec.model_dump(exclude={"memory_blocks"})
        values.update(model=model, tools=self._tool_names(spec.tools, spec.mcp_servers))
        self._check_servers(spec.mcp_servers)
        await self._check_model(values)
        blocks = [Block(b.label, b.value, b.limit) for b in spec.memory_blocks]
        agent = await self.store.create_agent(values, blocks)
        self._notify("created", agent)
        return agent

    async def list_agents(self) -> list[AgentRecord]:
        return await self.store.list_agents()

    async def get_agent(self, ref: str) -> AgentRecord:
        """An agent by id or name; `AgentNotFound` (404 `model_not_found`) otherwise."""
        return await self.store.get_agent(ref)

    async def update_agent(self, ref: str, patch: AgentUpdate | Mapping[str, Any]) -> AgentRecord:
        if not isinstance(patch, AgentUpdate):
            patch = parse(AgentUpdate, patch)
        if patch.memory_blocks is not None:
            check_blocks(patch.memory_blocks)
        agent = await self.store.get_agent(ref)
        changes = patch.changes()
        # A null `tools` means every built-in, as at creation; these have no null meaning.
        for field in _NOT_NULL:
            if field in changes and changes[field] is None:
                raise errors.InvalidRequest(f"'{field}' cannot be null", param=field)
        blocks_in = changes.pop("memory_blocks", None)
        servers = changes.get("mcp_servers", agent.mcp_servers)
        if changes.get("mcp_servers") is not None:
            self._check_servers(servers)
        if "tools" in changes or "mcp_servers" in changes:
            tools = changes.get("tools", list(agent.tools))
            changes["tools"] = self._tool_names(tools, servers)
        merged = {**_knobs(agent), **changes}
        if {"model", *_knobs(agent)} & changes.keys():
            await self._check_model(merged)
        blocks = None
        if blocks_in is not None:
            blocks = [Block(b.label, b.value, b.limit) for b in patch.memory_blocks or []]
        updated = await self.store.update_agent(agent.id, changes, blocks)
        self._notify("updated", updated)
        return updated

    async def delete_agent(self, ref: str) -> AgentRecord:
        agent = await self.store.get_agent(ref)
        await self.store.delete_agent(agent.id)
        self._notify("deleted", agent)
        return agent

    def add_listener(self, listener: AgentListener) -> None:
        self._listeners.append(listener)

    # -- history -------------------------------------------------------------------

    async def history(
        self,
        ref: str,
        *,
        conversation: str | None = None,
        limit: int = 50,
        before: int | None = None,
        after: int | None = None,
    ) -> tuple[AgentRecord, list[StoredMessage], bool]:
        """(agent, one page of messages oldest first, whether more lie beyond the page)."""
        agent = await self.store.get_agent(ref)
        key = check_conversation(conversation)
        page, more = await self.store.list_messages(
            agent.id, key, limit=limit, before=before, after=after
        )
        return agent, page, more

    async def conversations(
        self, ref: str, *, limit: int = 100
    ) -> tuple[AgentRecord, list[dict[str, Any]]]:
        """(agent, its conversations, most recently active first)."""
        agent = await self.store.get_agent(ref, blocks=False)
        return agent, await self.store.list_conversations(agent.id, limit=limit)

    # -- turns ---------------------------------------------------------------------

    async def run_turn(
        self,
        ref: str,
        message: str | Sequence[Mapping[str, Any]],
        *,
        conversation: str | None = None,
        idempotency_key: str | None = None,
        on_step: StepFn | None = None,
        calls: list[CallRecord] | None = None,
        on_end: Callable[[], None] | None = None,
    ) -> TurnResult:
        """Run one turn and return its messages, usage and step count.

        `message` is the user's text, or user messages in OpenAI's shape (content as a
        string or a list of parts). The turn goes on if the caller is cancelled;
        `on_end` is called when it ends all the same (to record its `calls`).
        """
        options = TurnOptions(on_step=on_step, calls=calls if calls is not None else [])
        task = await self._start(ref, message, conversation, idempotency_key, options)
        if on_end is not None:
            task.add_done_callback(lambda _: on_end())
        return await asyncio.shield(task)

    async def stream_turn(
        self,
        ref: str,
        message: str | Sequence[Mapping[str, Any]],
        *,
        conversation: str | None = None,
        idempotency_key: str | None = None,
        on_step: StepFn | None = None,
        calls: list[CallRecord] | None = None,
    ) -> TurnStream:
        """Start a turn whose reply text arrives as deltas; see `TurnStream`."""
        stream = TurnStream()
        options = TurnOptions(
            on_delta=stream.put,
            on_step=on_step,
            on_start=stream.started,
            calls=calls if calls is not None else [],
        )
        stream.task = await self._start(ref, message, conversation, idempotency_key, options)
        stream.task.add_done_callback(stream.close)
        return stream

    async def close(self, grace: float = 30.0) -> None:
        """Let running turns finish for `grace` seconds, then close the store.

        A turn still running then is cancelled; the loop marks it failed with
        `shutting_down`, so the same input (or Idempotency-Key) resumes it later.
        """
        if self._tasks:
            pending: set[asyncio.Task[TurnResult]] = set(self._tasks)
            if grace > 0:
                _, pending = await asyncio.wait(pending, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("shutdown: interrupted %d running agent turn(s)", len(pending))
                await asyncio.wait(pending, timeout=CANCEL_GRACE_SECONDS)
        await self.store.close()

    async def _start(
        self,
        ref: str,
        message: str | Sequence[Mapping[str, Any]],
        conversation: str | None,
        key: str | None,
        options: TurnOptions,
    ) -> asyncio.Task[TurnResult]:
        inputs = user_inputs(message)
        convo = check_conversation(conversation)
        key = check_idempotency_key(key)
        agent = await self.store.agent_for_turn(ref)
        digest = _input_hash(convo, inputs)
        return self._spawn(self._turn(agent, convo, inputs, digest, key, options))

    async def _turn(
        self,
        agent: AgentRecord,
        conversation: str,
        inputs: list[StoredMessage],
        digest: str,
        key: str | None,
        options: TurnOptions,
    ) -> TurnResult:
        async with self.store.turn(agent.id, conversation) as session:
            if session.lease.waited:
                # It queued behind another turn: run with the settings as they are now.
                agent = await self.store.agent_for_turn(agent.id)
            result = await self.loop.run(session, agent, inputs, digest, key, options)
        if self.on_turn is not None and not result.replayed:
            self.on_turn(agent, result)
        return result

    def _spawn(self, coro: Coroutine[Any, Any, TurnResult]) -> asyncio.Task[TurnResult]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        # The caller may be gone; an error it will never read must not warn at exit.
        task.add_done_callback(_consume)
        return task

    # -- checks --------------------------------------------------------------------

    async def _check_model(self, values: Mapping[str, Any]) -> None:
        """The model must resolve (404 `model_not_found` otherwise); caches its config."""
        await self.router.llm_config(
            values["model"],
            context_window_limit=values.get("context_window_limit"),
            max_tokens=values.get("max_tokens"),
            max_reasoning_tokens=values.get("max_reasoning_tokens"),
            enable_reasoner=bool(values.get("enable_reasoner")),
        )

    def _check_servers(self, servers: Sequence[str]) -> None:
        known = {s.name for s in self.settings.mcp_servers}
        for i, name in enumerate(servers):
            if name not in known:
                listed = ", ".join(sorted(known)) or "none configured"
                raise errors.InvalidRequest(
                    f"unknown MCP server '{name}' (configured: {listed})",
                    param=f"mcp_servers[{i}]",
                )

    def _tool_names(self, tools: Sequence[str] | None, servers: Sequence[str]) -> list[str]:
        if tools is None:
            return list(BUILTINS)
        for i, name in enumerate(tools):
            server, sep, _ = name.partition(SEPARATOR)
            if name in BUILTINS or (sep and server in servers):
                continue
            raise errors.InvalidRequest(
                f"unknown tool '{name}': use a built-in ({', '.join(BUILTINS)}) or "
                f"<server>{SEPARATOR}<tool> of a server in mcp_servers",
                param=f"tools[{i}]",
            )
        return list(dict.fromkeys(tools))

    def _notify(self, event: str, agent: AgentRecord) -> None:
        for listener in self._listeners:
            try:
                listener(event, agent)
            except Exception:
                log.exception("agent listener failed on %s", event)


class TurnStream:
    """A running turn's reply text, delta by delta; `result` is set once it ends.

    Iterating raises the turn's error at the end, if it failed. A reader that stops
    early does not stop the turn.
    """

    def __init__(self) -> None:
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self.task: asyncio.Task[TurnResult] | None = None
        self.result: TurnResult | None = None
        # Known before the first delta arrives.
        self.turn_id: str | None = None

    def started(self, turn_id: str) -> None:
        self.turn_id = turn_id

    def put(self, delta: str) -> None:
        self._queue.put_nowait(delta)

    def close(self, _: object = None) -> None:
        self._queue.put_nowait(_END)

    async def __aiter__(self) -> AsyncIterator[str]:
        while True:
            item = await self._queue.get()
            if item is _END:
                break
            assert isinstance(item, str)
            yield item
        assert self.task is not None
        self.result = await self.task


def user_inputs(message: str | Sequence[Mapping[str, Any]]) -> list[StoredMessage]:
    """The turn's input as messages to store; 400 when there is no usable user input."""
    if isinstance(message, str):
        checks.reject_nul(message, "message")
        message = [{"role": "user", "content": message}]
    out: list[StoredMessage] = []
    for i, item in enumerate(message):
        if item.get("role", "user") != "user":
            raise errors.InvalidRequest(
                "an agent turn takes user messages only", param=f"messages[{i}].role"
            )
        content = item.get("content")
        checks.reject_nul(content, f"messages[{i}].content")
        if isinstance(content, str):
            text, parts = content, None
        elif isinstance(content, list) and all(isinstance(p, dict) for p in content):
            checks.content_parts(content, f"messages[{i}].content")
            parts = list(content)
            text = " ".join(p["text"] for p in parts if p.get("type") == "text")
        else:
            raise errors.InvalidRequest(
                "a user message's content must be a string or a list of content parts",
                param=f"messages[{i}].content",
            )
        stored = StoredMessage(0, "", "", -1, 0, "user", text, content_parts=parts)
        stored.tokens = context.estimate_tokens(stored.to_openai())
        out.append(stored)
    if not out or not any((m.content or "").strip() or m.content_parts for m in out):
        raise errors.InvalidRequest("the turn has no user input", param="messages")
    return out


def check_conversation(value: str | None) -> str:
    if value is None or value == "":
        return DEFAULT_CONVERSATION
    if len(value) > MAX_KEY_LENGTH or not value.isprintable():
        raise errors.InvalidRequest(
            f"a conversation id must be 1 to {MAX_KEY_LENGTH} printable characters",
            param="conversation",
        )
    return value


def check_idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not value or len(value) > MAX_KEY_LENGTH or not value.isprintable():
        raise errors.InvalidRequest(
            f"an Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters",
            param="Idempotency-Key",
        )
    return value


def _input_hash(conversation: str, inputs: Sequence[StoredMessage]) -> str:
    payload = [conversation, [m.content_parts or m.content for m in inputs]]
    return hashlib.sha256(orjson.dumps(payload)).hexdigest()


def _knobs(agent: AgentRecord) -> dict[str, Any]:
    return {
        "model": agent.model,
        "context_window_limit": agent.context_window_limit,
        "max_tokens": agent.max_tokens,
        "max_reasoning_tokens": agent.max_reasoning_tokens,
        "enable_reasoner": agent.enable_reasoner,
    }


def _consume(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        with contextlib.suppress(BaseException):
            task.exception()
