"""The agent tools of the MCP facade: `ask_<name>` per agent, `list_agents`, `send_message`,
`create_agent`.

The `ask_<name>` tools follow the agents: the agent service tells us when one is created,
renamed or deleted in this process, and every `tools/list` re-reads the store, so agents
made by another worker or process appear too. Clients listening on a 2026-era connection
hear at once of the changes made in this process; the SDK's `MCPServer` tells session-based
clients `listChanged: false` and offers no switch, so they see the new list when they list
again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import BaseModel, Field

from gateway import errors
from gateway.agents.loop import StepEvent, StepFn
from gateway.agents.schemas import AgentRecord, TurnResult
from gateway.agents.service import AgentService
from gateway.mcp import results
from gateway.mcp.callers import request_caller
from gateway.observability.metrics import Metrics
from gateway.providers.base import CallRecord

log = logging.getLogger("gateway.mcp")

ASK = "ask_"


class AgentSummary(BaseModel):
    id: str
    name: str
    description: str
    model: str
    tool: str = Field(description="The MCP tool that asks this agent")
    mcp_servers: list[str]


class AgentList(BaseModel):
    agents: list[AgentSummary]


class MemoryBlockOut(BaseModel):
    label: str
    value: str
    limit: int


class CreatedAgent(AgentSummary):
    system: str
    memory_blocks: list[MemoryBlockOut]


class TurnUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    step_count: int


class AgentReply(BaseModel):
    agent: str
    conversation: str
    turn_id: str
    reply: str = Field(description="What the agent answered")
    finish_reason: str
    tool_calls: list[str] = Field(description="Tools the agent called during the turn, in order")
    usage: TurnUsage


MessageArg = Annotated[str, Field(description="What to say to the agent")]
ConversationArg = Annotated[
    str | None,
    Field(
        description="Conversation id; the agent keeps one history per conversation "
        "(default: its default conversation)"
    ),
]
AgentArg = Annotated[str, Field(description="The agent's name or id (see list_agents)")]
NameArg = Annotated[
    str, Field(description="Unique name, [A-Za-z0-9_-]{1,64}; the agent's tool is ask_<name>")
]
ModelArg = Annotated[str, Field(description="Model handle the agent thinks with (see list_models)")]
SystemArg = Annotated[str | None, Field(description="System prompt (default: a general one)")]
MemoryArg = Annotated[
    dict[str, str] | None,
    Field(
        description="Memory blocks as label -> initial text (default: empty 'persona' and 'human')"
    ),
]
DescriptionArg = Annotated[
    str | None, Field(description="What the agent is for; it describes its ask_<name> tool")
]


class AgentTools:
    """Registers the agent tools on an MCP server and keeps `ask_<name>` current.

    `announce` tells the server's listeners that its tool list changed.
    """

    def __init__(
        self,
        server: MCPServer,
        agents: AgentService,
        metrics: Metrics,
        announce: Callable[[], Coroutine[Any, Any, None]],
    ) -> None:
        self.server = server
        self.agents = agents
        self.metrics = metrics
        self.announce = announce
        # agent id -> its ask_<name> tool (with the description it was registered with).
        self._asks: dict[str, tuple[str, str]] = {}
        self._lock = asyncio.Lock()
        self._pending: set[asyncio.Task[None]] = set()
        self._add_fixed_tools()
        self.agents.add_listener(self._changed)

    def has(self, tool: str) -> bool:
        return any(name == tool for name, _ in self._asks.values())

    async def sync(self) -> None:
        """Match the `ask_<name>` tools to the agents in the store."""
        async with self._lock:
            try:
                agents = await self.agents.list_agents()
            except Exception:
                # Serve the tools we have; the next listing tries again.
                log.warning("MCP: cannot list agents to refresh the tools", exc_info=True)
                return
            changed = False
            for gone in set(self._asks) - {a.id for a in agents}:
                changed |= self._drop(gone)
            for agent in agents:
                changed |= self._register(agent)
        if changed:
            await self.announce()

    def _changed(self, event: str, agent: AgentRecord) -> None:
        """The agent service's listener: called in this process on create/update/delete."""
        changed = self._drop(agent.id) if event == "deleted" else self._register(agent)
        if changed:
            task = asyncio.get_running_loop().create_task(self.announce())
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    def _register(self, agent: AgentRecord) -> bool:
        name = ASK + agent.name
        description = agent.description or f"Ask the agent '{agent.name}'."
        if self._asks.get(agent.id) == (name, description):
            return False
        self._drop(agent.id)
        # Two agents may have swapped names since we last looked.
        for other, (taken, _) in list(self._asks.items()):
            if taken == name:
                self._drop(other)
        self.server.add_tool(
            _ask_tool(self, agent.id, agent.name),
            name=name,
            title=f"Ask {agent.name}",
            description=description,
            annotations=results.CALLS_MODEL,
        )
        self._asks[agent.id] = (name, description)
        return True

    def _drop(self, agent_id: str) -> bool:
        entry = self._asks.pop(agent_id, None)
        if entry is None:
            return False
        self.server.remove_tool(entry[0])
        return True

    async def turn(
        self,
        tool: str,
        ref: str,
        message: str,
        conversation: str | None,
        ctx: Context | None,
        *,
        check: bool = False,
    ) -> CallToolResult:
        """One agent turn as a tool result; `check` the caller's key first when the
        agent was named by the client (an `ask_` tool is checked before it is called)."""

        async def run() -> CallToolResult:
            if check:
                agent = await self.agents.get_agent(ref)
                if not request_caller(ctx).may_use_agent(agent.name):
                    raise errors.AgentNotAllowed(
                        f"this key may not use agent '{agent.name}'", param="agent"
                    )
            result = await self.run_turn(ref, message, conversation, ctx)
            data = _reply(result)
            return results.ok(data, data.reply or f"({result.finish_reason}, no text)")

        return await results.serve(self.metrics, tool, run)

    async def run_turn(
        self, ref: str, message: str, conversation: str | None, ctx: Context | None
    ) -> TurnResult:
        """One agent turn, with a progress notification per step when the client asked."""
        calls: list[CallRecord] = []
        on_step = _progress(ctx) if ctx is not None else None
        if ctx is not None:
            await _report(ctx, 0, self.agents.settings.agent_max_steps, "thinking")
        metrics = self.metrics

        def record() -> None:
            # No HTTP middleware sees these calls (stdio, or inside the MCP session).
            # Recorded when the turn ends, which may be after the client cancelled.
            for stats in calls:
                metrics.record_call(stats)

        return await self.agents.run_turn(
            ref, message, conversation=conversation, on_step=on_step, calls=calls, on_end=record
        )

    async def progress(self, ctx: Context) -> StepFn:
        """A step callback reporting progress to `ctx`'s client, told "thinking" first."""
        await _report(ctx, 0, self.agents.settings.agent_max_steps, "thinking")
        return _progress(ctx)

    def _add_fixed_tools(self) -> None:
        agents, metrics = self.agents, self.metrics

        async def list_agents(ctx: Context) -> Annotated[CallToolResult, AgentList]:
            """List the gateway's agents: name, description, model, and the tool that asks it."""

            async def run() -> CallToolResult:
                caller = request_caller(ctx)
                found = [a for a in await agents.list_agents() if caller.may_use_agent(a.name)]
                data = AgentList(agents=[_summary(a) for a in found])
                lines = [
                    f"{a.name} ({a.model}): {a.description or 'no description'}" for a in found
                ]
                return results.ok(data, "\n".join(lines) or "no agents yet")

            return await results.serve(metrics, "list_agents", run)

        async def send_message(
            agent: AgentArg,
            message: MessageArg,
            ctx: Context,
            conversation: ConversationArg = None,
        ) -> Annotated[CallToolResult, AgentReply]:
            """Send a message to an agent (by name or id) and return its reply.

            The agent keeps its memory and the conversation's history between calls.
            """
            return await self.turn("send_message", agent, message, conversation, ctx, check=True)

        async def create_agent(
            name: NameArg,
            model: ModelArg,
            ctx: Context,
            system: SystemArg = None,
            memory: MemoryArg = None,
            description: DescriptionArg = None,
        ) -> Annotated[CallToolResult, CreatedAgent]:
            """Create a stateful agent; it becomes the tool ask_<name>."""

            async def run() -> CallToolResult:
                caller = request_caller(ctx)
                if not caller.may_use_agent(name):
                    raise errors.AgentNotAllowed(
                        f"this key may not use agent '{name}'", param="name"
                    )
                if not caller.may_use_model(model):
                    raise errors.ModelNotAllowed(
                        f"this key may not use model '{model}'", param="model"
                    )
                spec: dict[str, object] = {"name": name, "model": model}
                if system is not None:
                    spec["system"] = system
                if description is not None:
                    spec["description"] = description
                if memory is not None:
                    spec["memory_blocks"] = [{"label": k, "value": v} for k, v in memory.items()]
                created = await agents.create_agent(spec)
                data = _created(created)
                text = (
                    f"Created agent '{created.name}' on {created.model}; "
                    f"ask it with the tool {data.tool}."
                )
                return results.ok(data, text)

            return await results.serve(metrics, "create_agent", run)

        server = self.server
        server.add_tool(
            list_agents,
            title="List agents",
            annotations=results.READ_ONLY,
        )
        server.add_tool(
            send_message,
            title="Message an agent",
            annotations=results.CALLS_MODEL,
        )
        server.add_tool(
            create_agent,
            title="Create an agent",
            annotations=ToolAnnotations(
                read_only_hint=False,
                destructive_hint=False,
                idempotent_hint=False,
                open_world_hint=False,
            ),
        )


def _ask_tool(
    tools: AgentTools, agent_id: str, name: str
) -> Callable[..., Awaitable[CallToolResult]]:
    async def ask(
        message: MessageArg, ctx: Context, conversation: ConversationArg = None
    ) -> Annotated[CallToolResult, AgentReply]:
        # By id: a rename re-registers the tool, and the id stays right until then.
        return await tools.turn(ASK + name, agent_id, message, conversation, ctx)

    return ask


def _progress(ctx: Context) -> StepFn:
    async def on_step(event: StepEvent) -> None:
        if event.final:
            note = f"step {event.step}: answered"
        elif event.tool_calls:
            note = f"step {event.step}: called {', '.join(event.tool_calls)}"
        else:
            note = f"step {event.step}"
        await _report(ctx, event.step, event.max_steps, note)

    return on_step


async def _report(ctx: Context, progress: float, total: float, message: str) -> None:
    try:
        await ctx.report_progress(progress, total, message)
    except Exception:
        # The client may have gone; the turn goes on and its reply is stored.
        log.debug("MCP progress notification not sent", exc_info=True)


def _summary(agent: AgentRecord) -> AgentSummary:
    return AgentSummary(
        id=agent.id,
        name=agent.name,
        description=agent.description,
        model=agent.model,
        tool=ASK + agent.name,
        mcp_servers=list(agent.mcp_servers),
    )


def _created(agent: AgentRecord) -> CreatedAgent:
    return CreatedAgent(
        **_summary(agent).model_dump(),
        system=agent.system,
        memory_blocks=[
            MemoryBlockOut(label=b.label, value=b.value, limit=b.limit) for b in agent.memory_blocks
        ],
    )


def _reply(result: TurnResult) -> AgentReply:
    calls = [
        call["function"]["name"]
        for m in result.messages
        if m.role == "assistant"
        for call in (m.tool_calls or [])
    ]
    return AgentReply(
        agent=result.agent.name,
        conversation=result.conversation,
        turn_id=result.turn_id,
        reply=result.reply,
        finish_reason=result.finish_reason,
        tool_calls=calls,
        usage=TurnUsage(**result.usage.to_api(), step_count=result.step_count),
    )
