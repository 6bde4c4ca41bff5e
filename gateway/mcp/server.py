"""The MCP server over the services object: one `MCPServer`, served over HTTP and stdio.

`McpFacade` owns the server and its subscription bus. `app.py` mounts `http_app()` at
`/mcp` and runs `running()` inside the Starlette lifespan (a mounted app's own lifespan
never runs); `gateway mcp` calls `run_stdio()`.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ToolsListChanged
from mcp.types import (
    INVALID_PARAMS,
    CallToolResult,
    GetPromptRequestParams,
    GetPromptResult,
    InputRequiredResult,
    ListToolsResult,
    PaginatedRequestParams,
    ReadResourceRequestParams,
    ReadResourceResult,
)
from mcp.types import Prompt as MCPPrompt
from mcp.types import Resource as MCPResource
from mcp.types import ResourceTemplate as MCPResourceTemplate
from mcp.types import Tool as MCPTool
from pydantic import BaseModel, Field, ValidationError
from starlette.applications import Starlette

from gateway import __version__, errors
from gateway.chat import ChatContext
from gateway.mcp import results
from gateway.mcp.agent_tools import ASK, AgentTools
from gateway.mcp.callers import context_caller, request_caller
from gateway.mcp.federation import Federation
from gateway.observability.metrics import OTHER
from gateway.routing.handles import agent_name
from gateway.services import Services
from gateway.settings import Settings, is_loopback
from gateway.tenants.caller import Caller

INSTRUCTIONS = (
    "agent-gateway: chat with any configured model (`list_models`, then `chat`) and talk to "
    "the gateway's stateful agents (`list_agents`, `ask_<name>`, `send_message`)."
)
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
_ANY_ADDRESS = frozenset({"0.0.0.0", "::", ""})
_WITH_PORT = re.compile(r"(\[[^\]]+\]|[^:\[\]]+):\d+")


class ModelEntry(BaseModel):
    handle: str = Field(description="Model handle to pass as `model`, e.g. 'openai/gpt-4o'")
    provider: str
    context_window: int | None = Field(default=None, description="Context window in tokens")


class ModelList(BaseModel):
    models: list[ModelEntry]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int


class ChatReply(BaseModel):
    model: str = Field(description="Handle of the model that answered")
    content: str = Field(description="The model's reply")
    finish_reason: str | None = None
    usage: Usage


class McpFacade:
    """The gateway's MCP server; tools read the services object at call time."""

    def __init__(self, services: Services) -> None:
        self.services = services
        # Our own bus, so changes made outside an MCP request (an agent created over REST)
        # can still reach clients listening on 2026-era connections.
        self.bus = InMemorySubscriptionBus()
        self.federation = Federation(
            services.mcp_servers,
            services.metrics,
            self.bus.publish,
            log_arguments=services.settings.mcp_log_arguments,
        )
        self.server = _new_server(self.bus, self.federation, services.metrics.tool_call)
        _add_model_tools(self)
        self.agent_tools = AgentTools(
            self.server, services.agents, services.metrics, self.tools_changed
        )
        self.server.refresh = self.agent_tools.sync
        self.server.is_stale = _stale_check(self.agent_tools)

    def http_app(self, settings: Settings) -> Starlette:
        """The Streamable HTTP app (path `/mcp`); call once per facade.

        With several workers, a session-based (2025-11-25) client's next request may reach
        another worker, which never saw its session; so there every request stands alone,
        as the 2026-07-28 protocol's requests always do.
        """
        return self.server.streamable_http_app(
            transport_security=transport_security(settings),
            max_request_body_size=settings.max_body_bytes,
            stateless_http=settings.workers > 1,
            # The SDK keeps idle sessions 30 minutes, up to 10,000 of them.
            session_idle_timeout=settings.mcp_session_idle_timeout,
            max_sessions=settings.mcp_max_sessions,
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The HTTP session manager's task group; without it every request fails.

        Enter it after the services have started: the agents' tools are read from the store.
        """
        async with self.server.session_manager.run():
            await self.agent_tools.sync()
            yield

    async def run_stdio(self) -> None:
        await self.agent_tools.sync()
        await self.server.run_stdio_async()

    async def tools_changed(self) -> None:
        await self.bus.publish(ToolsListChanged())

    async def serve(
        self, tool: str, run: Callable[[], Awaitable[CallToolResult]]
    ) -> CallToolResult:
        """Run a tool body as an MCP result (errors included) and count it."""
        return await results.serve(self.services.metrics, tool, run)


class GatewayMCPServer(MCPServer):
    """`MCPServer` with federated upstream servers beside its own tools, filtered per key.

    Its own tool list is brought up to date before it is read: agents may be created by
    another worker or process; their `ask_<name>` tools must still be listed, and callable
    by a client that listed them elsewhere. The caller's key (set by our HTTP middleware
    in the ASGI scope; nobody on stdio) decides which tools it sees and may call.
    """

    refresh: Callable[[], Awaitable[None]] | None = None
    is_stale: Callable[[str], bool] | None = None

    def __init__(
        self,
        *args: Any,
        federation: Federation,
        on_rejected: Callable[[str, str], None],
        **kwargs: Any,
    ) -> None:
        self.federation = federation
        # Counts a call refused before any tool body ran: (tool or OTHER, outcome).
        self.on_rejected = on_rejected
        super().__init__(*args, **kwargs)

    # -- tools -----------------------------------------------------------------------------

    async def _handle_list_tools(
        self, ctx: ServerRequestContext[Any], params: PaginatedRequestParams | None
    ) -> ListToolsResult:
        caller = context_caller(ctx)
        tools = await self.list_tools()
        if caller.mcp_tools is not None:
            tools = [t for t in tools if caller.may_use_tool(t.name)]
        if caller.agents is not None:
            # `ask_<name>` of an agent outside the key's list is not offered either.
            tools = [t for t in tools if self._may_ask(caller, t.name)]
        return ListToolsResult(tools=tools)

    def _may_ask(self, caller: Caller, tool: str) -> bool:
        agent = self._agent_of(tool)
        return agent is None or caller.may_use_agent(agent)

    def _agent_of(self, tool: str) -> str | None:
        """The agent a tool of ours asks, or None for any other tool."""
        if not tool.startswith(ASK) or self.federation.route(tool) is not None:
            return None
        return tool[len(ASK) :]

    async def list_tools(self) -> list[MCPTool]:
        if self.refresh is not None:
            await self.refresh()
        own = await super().list_tools()
        return own + await self.federation.tools() if self.federation.active else own

    def _tool_input_schema(self, name: str) -> dict[str, Any] | None:
        schema = super()._tool_input_schema(name)
        return schema if schema is not None else self.federation.input_schema(name)

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        caller = request_caller(context)
        if not caller.may_use_tool(name):
            self.on_rejected(OTHER, "tool_not_allowed")
            return results.error(errors.ToolNotAllowed(f"this key may not use the tool '{name}'"))
        agent = self._agent_of(name)
        if agent is not None and not caller.may_use_agent(agent):
            self.on_rejected(OTHER, "agent_not_allowed")
            return results.error(errors.AgentNotAllowed(f"this key may not use agent '{agent}'"))
        target = self.federation.route(name)
        if target is not None:
            return await self.federation.call_tool(*target, arguments, caller)
        if self.refresh is not None and self.is_stale is not None and self.is_stale(name):
            await self.refresh()
        if self._tool_manager.get_tool(name) is None:
            # A protocol error in both eras, as the spec says; the SDK answers an error
            # result (a tool that ran and failed) instead.
            self.on_rejected(OTHER, "not_found")
            raise MCPError(code=INVALID_PARAMS, message=f"Unknown tool: {name}")
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            # Tool bodies count themselves (`McpFacade.serve`); an unknown tool or arguments
            # that fail validation never reach one. The SDK makes these error results.
            if not isinstance(exc, UnexpectedToolError):
                if isinstance(exc.__cause__, ValidationError):
                    self.on_rejected(name, "invalid_value")
            raise

    async def get_prompt(
        self,
        name: str,
        arguments: dict[str, Any] | None = None,
        context: Context[Any, Any] | None = None,
    ) -> GetPromptResult | InputRequiredResult:
        if self._prompt_manager.get_prompt(name) is None:
            # The SDK turns this into an internal error (-32603); the spec says -32602.
            raise MCPError(code=INVALID_PARAMS, message=f"Unknown prompt: {name}")
        return await super().get_prompt(name, arguments, context)

    # -- resources and prompts: the federated servers' ---------------------------------------

    async def list_resources(self) -> list[MCPResource]:
        own = await super().list_resources()
        return own + await self.federation.resources() if self.federation.active else own

    async def list_resource_templates(self) -> list[MCPResourceTemplate]:
        own = await super().list_resource_templates()
        if not self.federation.active:
            return own
        return own + await self.federation.resource_templates()

    async def _handle_read_resource(
        self, ctx: ServerRequestContext[Any], params: ReadResourceRequestParams
    ) -> ReadResourceResult | InputRequiredResult:
        if self.federation.active:
            found = await self.federation.read_resource(str(params.uri))
            if found is not None:
                return found
        return await super()._handle_read_resource(ctx, params)

    async def list_prompts(self) -> list[MCPPrompt]:
        own = await super().list_prompts()
        return own + await self.federation.prompts() if self.federation.active else own

    async def _handle_get_prompt(
        self, ctx: ServerRequestContext[Any], params: GetPromptRequestParams
    ) -> GetPromptResult | InputRequiredResult:
        target = self.federation.route(params.name)
        if target is not None:
            return await self.federation.get_prompt(*target, params.arguments)
        return await super()._handle_get_prompt(ctx, params)


def _stale_check(agent_tools: AgentTools) -> Callable[[str], bool]:
    return lambda name: name.startswith(ASK) and not agent_tools.has(name)


def _new_server(
    bus: InMemorySubscriptionBus,
    federation: Federation,
    on_rejected: Callable[[str, str], None],
) -> GatewayMCPServer:
    # MCPServer calls logging.basicConfig(); the gateway configures its own logging, so
    # keep the root logger as it was.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        return GatewayMCPServer(
            "agent-gateway",
            title="agent-gateway",
            instructions=INSTRUCTIONS,
            version=__version__,
            subscriptions=bus,
            federation=federation,
            on_rejected=on_rejected,
        )
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """DNS-rebinding protection: loopback names, the bound host, and what the operator adds.

    Any port is accepted on an allowed host: a rebinding attack changes the host name the
    browser sends, not the port, and the port the server really listens on is not known
    here (tests and `--port 0` bind their own sockets).
    """
    hosts = list(_LOOPBACK_HOSTS)
    if settings.host not in _ANY_ADDRESS and not is_loopback(settings.host):
        hosts.append(f"[{settings.host}]" if ":" in settings.host else settings.host)
    hosts += settings.allowed_hosts
    allowed_hosts = [pattern for host in hosts for pattern in _host_patterns(host)]
    origins = [f"http://{host}:*" for host in _LOOPBACK_HOSTS]
    origins += [f"http://{host}" for host in _LOOPBACK_HOSTS]
    origins += settings.allowed_origins
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=allowed_hosts,
        allowed_origins=origins,
    )


def _host_patterns(host: str) -> list[str]:
    """`example.com` allows it on any port (and bare); `example.com:8443` only that port."""
    return [host] if _WITH_PORT.fullmatch(host) else [host, f"{host}:*"]


# -- model tools ---------------------------------------------------------------------------

ModelArg = Annotated[
    str,
    Field(
        description="Model handle 'provider/model' (see list_models), a bare model id, "
        "or 'agent/<name>' for an agent"
    ),
]
PromptArg = Annotated[str, Field(description="The user message to send")]


def _add_model_tools(facade: McpFacade) -> None:
    services = facade.services

    async def list_models() -> Annotated[CallToolResult, ModelList]:
        """List the models the gateway can route to, with their context windows."""

        async def run() -> CallToolResult:
            infos = sorted(await services.router.list_models(), key=lambda m: m.handle)
            data = ModelList(
                models=[
                    ModelEntry(
                        handle=m.handle, provider=m.provider, context_window=m.context_window
                    )
                    for m in infos
                ]
            )
            lines = [
                f"{m.handle} (context window {m.context_window})" if m.context_window else m.handle
                for m in infos
            ]
            return results.ok(data, "\n".join(lines) or "no models: no provider is enabled")

        return await facade.serve("list_models", run)

    async def chat(
        model: ModelArg, prompt: PromptArg, ctx: Context
    ) -> Annotated[CallToolResult, ChatReply]:
        """Send one prompt to a model through the gateway and return its reply.

        `agent/<name>` runs a turn of that agent, as the OpenAI-compatible API does.
        """

        async def run() -> CallToolResult:
            body: dict[str, Any] = {
                "model": model,
                "messages": [{"role": "user", "content": prompt}],
            }
            chat_ctx = ChatContext()
            if agent_name(model) is not None:
                chat_ctx.on_step = await facade.agent_tools.progress(ctx)
            try:
                reply = await services.chat.complete(body, request_caller(ctx), chat_ctx)
            finally:
                # No HTTP middleware sees these calls (stdio, or inside the MCP session).
                for record in chat_ctx.records:
                    services.metrics.record_call(record)
            content = reply.content or ""
            data = ChatReply(
                model=chat_ctx.served_by or model,
                content=content,
                finish_reason=reply.finish_reason,
                usage=Usage(
                    prompt_tokens=reply.usage.prompt_tokens,
                    completion_tokens=reply.usage.completion_tokens,
                ),
            )
            return results.ok(data, content)

        return await facade.serve("chat", run)

    server = facade.server
    server.add_tool(
        list_models,
        title="List models",
        annotations=results.READ_ONLY,
    )
    server.add_tool(
        chat,
        title="Chat with a model",
        annotations=results.CALLS_MODEL,
    )
