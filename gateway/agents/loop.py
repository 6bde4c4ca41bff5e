"""The agent loop, the only one: a turn is steps of (call the model, run its tool calls).

A turn stores the user's input, then repeats: render the system prompt with memory,
cut the history to the window, call the model with the agent's tools, and commit the
step (assistant message, tool results, memory edits) in one transaction. It ends at
a reply without tool calls, or at the step limit with a message that says so.

How a turn is run (streamed or not, who hears of each step) is a parameter, never a
second loop. On an upstream failure the turn is marked failed and the mapped error
raised; what is stored then is the input and the whole steps before the failure, and
the same input sent again resumes the turn instead of repeating it. A turn cancelled
by shutdown is marked failed (`shutting_down`) the same way, so it resumes too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from gateway import errors
from gateway.agents import context
from gateway.agents.calls import DeltaFn, ModelCaller, ModelReply, call_model
from gateway.agents.schemas import AgentRecord, Block, StoredMessage, TurnResult
from gateway.agents.tools import BUILTINS, Tool, ToolContext, ToolSource, execute
from gateway.agents.turns import StepTx, TurnSession, TurnStart, TurnState
from gateway.providers.base import CallRecord
from gateway.routing.router import LLMConfig, Route, Router

log = logging.getLogger("gateway.agents")

# A turn cancelled at shutdown gets this long to record that it was interrupted.
INTERRUPT_WRITE_SECONDS = 3.0


@dataclass(frozen=True)
class StepEvent:
    """Told to `on_step` after each committed step (MCP sends it as progress)."""

    agent: str
    turn_id: str
    step: int
    max_steps: int
    tool_calls: tuple[str, ...]
    final: bool


StepFn = Callable[[StepEvent], Awaitable[None]]


@dataclass
class TurnOptions:
    # Streams each step upstream and hands content deltas here as they arrive.
    on_delta: DeltaFn | None = None
    on_step: StepFn | None = None
    # Told the turn's id once it is known (before the first delta).
    on_start: Callable[[str], None] | None = None
    # Every upstream call of the turn, for metrics and the overhead measurement.
    calls: list[CallRecord] = field(default_factory=list)


@dataclass
class _Run:
    """One turn in progress: what the loop knows between steps."""

    # With its memory blocks as they are now (re-read after each step that edits them).
    agent: AgentRecord
    session: TurnSession
    state: TurnState
    route: Route
    config: LLMConfig
    tools: dict[str, Tool]
    options: TurnOptions
    history: list[StoredMessage]
    evicted: int
    # Whether any text went to `on_delta` yet (the next step's text is set apart).
    emitted: bool = False

    def emitter(self) -> DeltaFn | None:
        """A delta function for one step's text, or None when nobody streams.

        Steps' texts are separated by a blank line, as `TurnResult.reply` joins them.
        """
        on_delta = self.options.on_delta
        if on_delta is None:
            return None
        fresh = True

        def delta(text: str) -> None:
            nonlocal fresh
            if not text:
                return
            if fresh and self.emitted:
                on_delta("\n\n")
            fresh, self.emitted = False, True
            on_delta(text)

        return delta

    def say(self, text: str) -> None:
        """Stream a whole text known in advance (a replay, a resumed step, a notice)."""
        delta = self.emitter()
        if delta is not None:
            delta(text)


class AgentLoop:
    def __init__(
        self,
        router: Router,
        models: ModelCaller,
        max_steps: int,
        sources: Sequence[ToolSource] = (),
    ) -> None:
        self.router = router
        self.models = models
        self.max_steps = max_steps
        self.sources = list(sources)

    async def tools_for(self, agent: AgentRecord) -> dict[str, Tool]:
        tools = {name: BUILTINS[name] for name in agent.tools if name in BUILTINS}
        for source in self.sources:
            try:
                found = await source.tools_for(agent)
            except Exception:
                # A tool source that is down costs the agent those tools, not the turn.
                log.exception("agent %s: a tool source failed", agent.name)
                continue
            for tool in found:
                tools.setdefault(tool.name, tool)
        return tools

    async def run(
        self,
        session: TurnSession,
        agent: AgentRecord,
        inputs: Sequence[StoredMessage],
        input_hash: str,
        key: str | None,
        options: TurnOptions,
    ) -> TurnResult:
        # Resolve everything that can fail on configuration before storing the input.
        config = await self.router.llm_config(
            agent.model,
            context_window_limit=agent.context_window_limit,
            max_tokens=agent.max_tokens,
            max_reasoning_tokens=agent.max_reasoning_tokens,
            enable_reasoner=agent.enable_reasoner,
        )
        route = await self.router.resolve(agent.model)
        tools = await self.tools_for(agent)
        start = await session.start(inputs, input_hash, key)
        if options.on_start is not None:
            options.on_start(start.state.id)
        run = self._begin(agent, session, start, route, config, tools, options)
        if start.replay:
            run.say(result_of(run).reply)
            return result_of(run, replayed=True)
        try:
            while run.state.status != "done":
                if run.state.step_count >= self.max_steps:
                    await self._give_up(run)
                else:
                    await self._step(run)
        except errors.GatewayError as exc:
            await self._fail(run, exc)
            raise
        except asyncio.CancelledError:
            await self._interrupted(run)
            raise
        except Exception as exc:
            log.exception("agent %s: turn %s failed", agent.name, run.state.id)
            await self._fail(run, errors.GatewayError("internal error in the agent loop"))
            raise errors.GatewayError("internal error in the agent loop") from exc
        return result_of(run)

    def _begin(
        self,
        agent: AgentRecord,
        session: TurnSession,
        start: TurnStart,
        route: Route,
        config: LLMConfig,
        tools: dict[str, Tool],
        options: TurnOptions,
    ) -> _Run:
        agent = replace(agent, memory_blocks=tuple(start.blocks))
        run = _Run(
            agent,
            session,
            start.state,
            route,
            config,
            tools,
            options,
            start.history,
            start.evicted,
        )
        if not start.replay:
            # A resumed turn: what its earlier steps said is part of this reply.
            for message in start.state.messages:
                if message.role == "assistant" and message.content:
                    run.say(message.content)
        return run

    async def _step(self, run: _Run) -> None:
        body = self._request(run)
        reply = await call_model(
            self.models, run.route, body, run.options.calls, on_delta=run.emitter()
        )
        number = run.state.step_count + 1
        assistant = _assistant(reply, number)
        results = await self._outside_tools(run, reply.tool_calls)
        async with run.session.step(run.state) as tx:
            tx.usage.add(reply.prompt_tokens, reply.completion_tokens)
            tx.add(assistant)
            changed = await self._inside_tools(run, tx, reply.tool_calls, results)
            for call, result in zip(reply.tool_calls, results, strict=True):
                tx.add(_tool_message(call, result or "", number))
            if not reply.tool_calls:
                tx.finish_reason = reply.finish_reason or "stop"
            tx.context_start = self._context_start(run)
            blocks = await tx.blocks() if changed else None
        self._after_commit(run, tx, blocks)
        if run.options.on_step is not None:
            event = StepEvent(
                run.agent.name,
                run.state.id,
                number,
                self.max_steps,
                tuple(c["function"]["name"] for c in reply.tool_calls),
                not reply.tool_calls,
            )
            try:
                await run.options.on_step(event)
            except Exception:
                # Progress is a courtesy: the step is stored, the turn goes on.
                log.exception("agent %s: on_step failed", run.agent.name)

    def _request(self, run: _Run) -> dict[str, Any]:
        names = list(run.tools)
        schemas = [tool.schema() for tool in run.tools.values()]
        system = context.render_system(run.agent, run.agent.memory_blocks, run.evicted, names)
        budget = context.history_budget(
            run.config.context_window, run.agent.max_tokens, system, schemas
        )
        if self._trim(run, budget):
            system = context.render_system(run.agent, run.agent.memory_blocks, run.evicted, names)
        reasoning = run.agent.enable_reasoner
        resend = run.config.resend_reasoning
        messages = [{"role": "system", "content": system}]
        messages += [
            m.to_openai(
                with_reasoning=(reasoning and m.turn_id == run.state.id)
                or (resend and bool(m.tool_calls))
            )
            for m in run.history
        ]
        body: dict[str, Any] = {"messages": messages, **llm_params(run.config)}
        if schemas:
            body["tools"] = schemas
        return body

    def _trim(self, run: _Run, budget: int) -> bool:
        """Drop what no longer fits from the front of the history; True if anything went."""
        protect = next(
            (i for i, m in enumerate(run.history) if m.turn_id == run.state.id), len(run.history)
        )
        start = context.trim_start(run.history, budget, protect)
        if start > 0:
            run.evicted = run.history[start].seq
            del run.history[:start]
        return start > 0

    def _context_start(self, run: _Run) -> int | None:
        if run.history and run.history[0].seq > run.session.context_start:
            return run.history[0].seq
        return None

    async def _outside_tools(self, run: _Run, calls: list[dict[str, Any]]) -> list[str | None]:
        """Tools that call out run before the step's transaction opens."""
        results: list[str | None] = [None] * len(calls)
        ctx = ToolContext(run.agent, run.session.conversation, None)
        for i, call in enumerate(calls):
            tool = run.tools.get(call["function"]["name"])
            if tool is not None and not tool.transactional:
                results[i] = await execute(tool, call, ctx, list(run.tools))
        return results

    async def _inside_tools(
        self, run: _Run, tx: StepTx, calls: list[dict[str, Any]], results: list[str | None]
    ) -> bool:
        ctx = ToolContext(run.agent, run.session.conversation, tx)
        ran = False
        for i, call in enumerate(calls):
            if results[i] is None:
                results[i] = await execute(
                    run.tools.get(call["function"]["name"]), call, ctx, list(run.tools)
                )
                ran = True
        return ran

    def _after_commit(self, run: _Run, tx: StepTx, blocks: list[Block] | None) -> None:
        run.history.extend(tx.written)
        if blocks is not None:
            run.agent = replace(run.agent, memory_blocks=tuple(blocks))

    async def _give_up(self, run: _Run) -> None:
        text = (
            f"I stopped after {self.max_steps} steps without reaching a final answer "
            "(the agent's step limit). Ask me to continue if you want me to go on."
        )
        async with run.session.step(run.state, counts=False) as tx:
            tx.add(
                StoredMessage(
                    0,
                    "",
                    "",
                    -1,
                    run.state.step_count,
                    "assistant",
                    text,
                    finish_reason="step_limit",
                    tokens=context.estimate_tokens({"content": text}),
                )
            )
            tx.finish_reason = "stop"
        self._after_commit(run, tx, None)
        run.say(text)

    async def _interrupted(self, run: _Run) -> None:
        """Shutdown cancelled the turn: mark it failed so it does not stay `running`.

        The same input (or Idempotency-Key) sent again resumes it after its last step.
        """
        task = asyncio.current_task()
        if task is not None:
            # Let the write below run; the turn still ends cancelled when we re-raise.
            task.uncancel()
        error = errors.ShuttingDown(
            "the gateway shut down during this turn; send the same input again to resume it"
        )
        try:
            async with asyncio.timeout(INTERRUPT_WRITE_SECONDS):
                await run.session.fail(run.state, error)
        except Exception:
            log.exception(
                "agent %s: could not mark turn %s interrupted", run.agent.name, run.state.id
            )

    async def _fail(self, run: _Run, error: errors.GatewayError) -> None:
        try:
            await run.session.fail(run.state, error)
        except Exception:
            # The store itself may be what failed; the client still gets the first error.
            log.exception("agent %s: could not mark turn %s failed", run.agent.name, run.state.id)


def llm_params(config: LLMConfig) -> dict[str, Any]:
    """The agent's LLM knobs as request fields.

    With the reasoner on and a reasoning budget, the request carries Anthropic-style
    `thinking` (which several OpenAI-compatible servers accept) and room for it in
    `max_tokens`; with it off, nothing about reasoning is sent.
    """
    params: dict[str, Any] = {}
    if config.enable_reasoner and config.max_reasoning_tokens:
        params["thinking"] = {"type": "enabled", "budget_tokens": config.max_reasoning_tokens}
        if config.max_tokens:
            params["max_tokens"] = config.max_tokens + config.max_reasoning_tokens
    elif config.max_tokens:
        params["max_tokens"] = config.max_tokens
    return params


def result_of(run: _Run, *, replayed: bool = False) -> TurnResult:
    state = run.state
    return TurnResult(
        turn_id=state.id,
        agent=run.agent,
        conversation=run.session.conversation,
        messages=list(state.messages),
        usage=state.usage,
        step_count=state.step_count,
        finish_reason=state.finish_reason,
        created_at=state.created_at,
        replayed=replayed,
    )


def _assistant(reply: ModelReply, step: int) -> StoredMessage:
    message = StoredMessage(
        0,
        "",
        "",
        -1,
        step,
        "assistant",
        reply.content,
        reasoning_content=reply.reasoning_content,
        tool_calls=reply.tool_calls or None,
        finish_reason=reply.finish_reason,
        prompt_tokens=reply.prompt_tokens,
        completion_tokens=reply.completion_tokens,
    )
    message.tokens = context.estimate_tokens(message.to_openai(with_reasoning=True))
    return message


def _tool_message(call: dict[str, Any], result: str, step: int) -> StoredMessage:
    return StoredMessage(
        0,
        "",
        "",
        -1,
        step,
        "tool",
        result,
        tool_call_id=call["id"],
        name=call["function"]["name"],
        tokens=context.estimate_tokens({"content": result}),
    )
