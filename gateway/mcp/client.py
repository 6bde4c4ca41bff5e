"""The MCP client side: tools of the `[[mcp_servers]]` in the config, offered to agents.

Each configured server gets one connection, opened on first use and reused until it breaks
or the gateway shuts down. A tool is offered to the model as the OpenAI function
`<server>__<tool>`. Every failure (server down, tool error, timeout) comes back as a result
string the model can read, never as an exception that would fail the agent's turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import (
    CONNECTION_CLOSED,
    REQUEST_TIMEOUT,
    CallToolResult,
    TextContent,
    Tool,
    ToolListChangedNotification,
)

from gateway.agents.schemas import AgentRecord
from gateway.agents.tools import Tool as AgentTool
from gateway.agents.tools import ToolContext
from gateway.settings import McpServerConfig

log = logging.getLogger("gateway.mcp.client")

SEPARATOR = "__"
# OpenAI function names: [A-Za-z0-9_-]{1,64}; MCP tool names may also hold '.' and be longer.
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_MAX_FUNCTION_NAME = 64
_MAX_PAGES = 20
# After a failed connect, calls fail fast for this long instead of waiting on a dead server.
RECONNECT_AFTER = 30.0
# Starting a stdio server (an interpreter, `npx` …) can take longer than a tool call may.
MIN_CONNECT_TIMEOUT = 30.0
# How long a closing connection may take (a stdio server is asked to exit, then killed).
CLOSE_TIMEOUT = 5.0


class ServerUnavailable(Exception):
    """The server could not be reached; the message says why, for the model to read."""


class McpConnection:
    """One server: a lazily opened `Client`, held by a task of its own.

    The SDK's client is an anyio context that must be exited by the task that entered it,
    while calls come from many request tasks; so a holder task enters it, hands it over,
    and exits it when told to stop or when the connection breaks.
    """

    def __init__(self, config: McpServerConfig) -> None:
        self.config = config
        self.name = config.name
        self._client: Client | None = None
        self._holder: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._lock = asyncio.Lock()
        self._tools: list[Tool] | None = None
        self._down_until = 0.0
        self._down_reason = ""

    # -- connection ------------------------------------------------------------------------

    async def client(self) -> Client:
        async with self._lock:
            if self._client is not None and self._holder is not None and not self._holder.done():
                return self._client
            if time.monotonic() < self._down_until:
                raise ServerUnavailable(self._down_reason)
            try:
                async with asyncio.timeout(max(self.config.timeout, MIN_CONNECT_TIMEOUT)):
                    self._client = await self._connect()
            except Exception as exc:
                self._down_reason = _describe(exc)
                self._down_until = time.monotonic() + RECONNECT_AFTER
                log.warning("MCP server %s: cannot connect: %s", self.name, self._down_reason)
                raise ServerUnavailable(self._down_reason) from None
            self._tools = None
            return self._client

    async def _connect(self) -> Client:
        ready: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()
        holder = asyncio.create_task(self._hold(ready, stop), name=f"mcp-client-{self.name}")
        try:
            client = await asyncio.shield(ready)
        except BaseException:
            holder.cancel()
            with contextlib.suppress(BaseException):
                await holder
            raise
        self._holder, self._stop = holder, stop
        return client

    async def _hold(self, ready: asyncio.Future[Client], stop: asyncio.Event) -> None:
        try:
            async with self._open() as client:
                ready.set_result(client)
                await stop.wait()
        except asyncio.CancelledError:
            if not ready.done():
                ready.cancel()
            raise
        except Exception as exc:
            if not ready.done():
                ready.set_exception(exc)
            else:
                log.warning("MCP server %s: connection lost: %s", self.name, _describe(exc))

    @contextlib.asynccontextmanager
    async def _open(self) -> AsyncIterator[Client]:
        config = self.config
        async with contextlib.AsyncExitStack() as stack:
            if config.url:
                http = await stack.enter_async_context(
                    httpx2.AsyncClient(
                        headers=config.headers,
                        timeout=httpx2.Timeout(config.timeout, read=max(config.timeout, 300.0)),
                    )
                )
                server: Any = streamable_http_client(config.url, http_client=http)
            else:
                assert config.command is not None
                server = StdioServerParameters(
                    command=config.command, args=config.args, env=config.env or None
                )
            client = Client(server, cache=None, message_handler=self._on_message)
            yield await stack.enter_async_context(client)

    async def _on_message(self, message: object) -> None:
        if isinstance(message, ToolListChangedNotification):
            self._tools = None

    async def reset(self) -> None:
        """Close the connection; the next call opens a new one."""
        holder, stop = self._holder, self._stop
        self._client = self._holder = self._stop = None
        self._tools = None
        if holder is None or stop is None:
            return
        stop.set()
        try:
            # Shielded: a caller cancelled meanwhile must not leave the server half closed.
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await asyncio.shield(holder)
        except TimeoutError:
            holder.cancel()
        except asyncio.CancelledError:
            holder.cancel()
            raise

    # -- tools -----------------------------------------------------------------------------

    async def tools(self) -> list[Tool]:
        if self._tools is not None:
            return self._tools
        client = await self.client()
        tools: list[Tool] = []
        cursor: str | None = None
        try:
            async with asyncio.timeout(self.config.timeout):
                for _ in range(_MAX_PAGES):
                    page = await client.list_tools(cursor=cursor)
                    tools += page.tools
                    cursor = page.next_cursor
                    if cursor is None:
                        break
        except (MCPError, TimeoutError):
            raise
        except Exception:
            await self.reset()
            raise
        self._tools = tools
        return tools

    async def call(self, tool: str, arguments: Mapping[str, Any]) -> str:
        label = f"{self.name}{SEPARATOR}{tool}"
        timeout = self.config.timeout
        try:
            client = await self.client()
            async with asyncio.timeout(timeout):
                result = await client.call_tool(tool, dict(arguments), read_timeout_seconds=timeout)
        except ServerUnavailable as exc:
            return f"Error: MCP server '{self.name}' is unavailable: {exc}"
        except TimeoutError:
            return f"Error: MCP tool '{label}' timed out after {timeout:g} s"
        except MCPError as exc:
            if exc.code == REQUEST_TIMEOUT:
                return f"Error: MCP tool '{label}' timed out after {timeout:g} s"
            if exc.code == CONNECTION_CLOSED:
                await self.reset()
            return f"Error: MCP tool '{label}' failed: {exc.message}"
        except Exception as exc:
            # A transport failure: the connection may be half-dead, so start afresh next time.
            await self.reset()
            return f"Error: MCP tool '{label}' failed: {_describe(exc)}"
        text = render(result)
        return f"Error: MCP tool '{label}' failed: {text}" if result.is_error else text


class McpToolbox:
    """All configured MCP servers; owned by the services object, closed at shutdown.

    It is a `ToolSource` of the agent service: agents get their servers' tools from it.
    """

    def __init__(self, configs: Sequence[McpServerConfig]) -> None:
        self._connections = {c.name: McpConnection(c) for c in configs}
        # function name -> (server, tool), filled as servers' tools are listed.
        self._functions: dict[str, tuple[str, str]] = {}

    @property
    def servers(self) -> list[str]:
        return list(self._connections)

    async def functions(self, servers: Iterable[str]) -> list[dict[str, Any]]:
        """OpenAI tool definitions for the tools of these servers.

        A server that is unknown, down or slow contributes nothing this time (logged);
        the agent's turn goes on with the tools it has.
        """
        return [_definition(name, tool) for name, _, tool in await self._listing(servers)]

    async def tools_for(self, agent: AgentRecord) -> list[AgentTool]:
        """The agent's tools from its `mcp_servers` (the agents' `ToolSource` protocol).

        A server's tools are all offered unless the agent's `tools` names some of them
        (`<server>__<tool>`); then only those.
        """
        if not agent.mcp_servers:
            return []
        chosen = {name for name in agent.tools if SEPARATOR in name}
        tools: list[AgentTool] = []
        for name, server, tool in await self._listing(agent.mcp_servers):
            picked = {c for c in chosen if c.startswith(server + SEPARATOR)}
            if picked and not picked & {name, f"{server}{SEPARATOR}{tool.name}"}:
                continue
            definition = _definition(name, tool)["function"]
            tools.append(
                AgentTool(
                    name,
                    definition["description"],
                    definition["parameters"],
                    functools.partial(self._run, server, tool.name),
                    transactional=False,
                )
            )
        return tools

    async def _run(
        self, server: str, tool: str, ctx: ToolContext, arguments: dict[str, Any]
    ) -> str:
        return await self.call(server, tool, arguments)

    async def _listing(self, servers: Iterable[str]) -> list[tuple[str, str, Tool]]:
        """(function name, server, tool) for every tool of these servers that answer."""
        names = [s for s in dict.fromkeys(servers) if s in self._connections]
        listed = await asyncio.gather(
            *(self._connections[s].tools() for s in names), return_exceptions=True
        )
        found: list[tuple[str, str, Tool]] = []
        for server, tools in zip(names, listed, strict=True):
            if isinstance(tools, BaseException):
                log.warning("MCP server %s: cannot list tools: %s", server, _describe(tools))
                continue
            taken: set[str] = set()
            for tool in tools:
                name = function_name(server, tool.name, taken)
                taken.add(name)
                self._functions[name] = (server, tool.name)
                found.append((name, server, tool))
        return found

    def owns(self, function: str) -> bool:
        return self._split(function) is not None

    async def call_function(self, function: str, arguments: Mapping[str, Any] | str) -> str:
        """Run `<server>__<tool>` with the model's arguments (a JSON string or an object)."""
        target = self._split(function)
        if target is None:
            return f"Error: no MCP tool named '{function}'"
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError as exc:
                return f"Error: the arguments of '{function}' are not valid JSON: {exc}"
        if not isinstance(arguments, Mapping):
            return f"Error: the arguments of '{function}' must be a JSON object"
        return await self.call(*target, arguments)

    async def call(self, server: str, tool: str, arguments: Mapping[str, Any]) -> str:
        connection = self._connections.get(server)
        if connection is None:
            return f"Error: no MCP server named '{server}' is configured"
        return await connection.call(tool, arguments)

    async def close(self) -> None:
        await asyncio.gather(*(c.reset() for c in self._connections.values()))

    def _split(self, function: str) -> tuple[str, str] | None:
        if function in self._functions:
            return self._functions[function]
        # Not listed yet (e.g. after a restart): the longest configured server prefix wins.
        for server in sorted(self._connections, key=len, reverse=True):
            prefix = server + SEPARATOR
            if function.startswith(prefix) and len(function) > len(prefix):
                return server, function[len(prefix) :]
        return None


def function_name(server: str, tool: str, taken: set[str] | frozenset[str] = frozenset()) -> str:
    """`<server>__<tool>` made a valid OpenAI function name, unique among `taken`."""
    name = _UNSAFE.sub("_", f"{server}{SEPARATOR}{tool}")[:_MAX_FUNCTION_NAME]
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        suffix = f"_{n}"
        candidate = name[: _MAX_FUNCTION_NAME - len(suffix)] + suffix
    return candidate


def render(result: CallToolResult) -> str:
    """A tool result as text for the model: text blocks, else the structured content."""
    parts = [
        block.text if isinstance(block, TextContent) else f"[{block.type} content omitted]"
        for block in result.content
    ]
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content))
    return "\n".join(parts)


def _definition(name: str, tool: Tool) -> dict[str, Any]:
    parameters = dict(tool.input_schema) if tool.input_schema else {}
    parameters.setdefault("type", "object")
    parameters.setdefault("properties", {})
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": tool.description or tool.title or tool.name,
            "parameters": parameters,
        },
    }


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _describe(exc.exceptions[0])
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
