"""One upstream MCP server: a long-lived client connection, shared by every caller in a process.

The connection opens on first use (or at start-up, for a server the gateway exposes) and is
reused until it breaks or the gateway shuts down; after a failed connect, calls fail fast
for a while instead of each waiting on a dead server. Results are the SDK's own types,
unchanged: the agents render them for a model, the MCP facade passes them on.

Upstream sessions: the gateway holds one session (or, on a 2026-07-28 upstream, one
stateless client) per server per process, whatever its own clients do; nothing a client
sees depends on which process or connection served it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TextIO, TypeVar

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.client.subscriptions import ListenNotSupportedError
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import PromptsListChanged, ResourcesListChanged, ToolsListChanged
from mcp.types import (
    CONNECTION_CLOSED,
    REQUEST_TIMEOUT,
    CallToolResult,
    GetPromptResult,
    Prompt,
    PromptListChangedNotification,
    ReadResourceResult,
    Resource,
    ResourceListChangedNotification,
    ResourceTemplate,
    Tool,
    ToolListChangedNotification,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from gateway.settings import McpServerConfig

log = logging.getLogger("gateway.mcp_upstream")
T = TypeVar("T")

# After a failed connect, calls fail fast for this long instead of waiting on a dead server.
RECONNECT_AFTER = 30.0
# Starting a stdio server (an interpreter, `npx` …) can take longer than a tool call may.
MIN_CONNECT_TIMEOUT = 30.0
# How long a closing connection may take (a stdio server is asked to exit, then killed).
CLOSE_TIMEOUT = 5.0
# Background reconnects of an exposed server: first delay, doubled up to the cap.
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 60.0
_MAX_PAGES = 20

# What changed upstream: "tools", "resources" or "prompts".
ChangeListener = Callable[[str, str], Awaitable[None]]


class ServerUnavailable(Exception):
    """The server could not be reached; the message says why, readable by people and models."""


class ConnectionBroken(ServerUnavailable):
    """The connection broke during a request (the server crashed or went away mid-call)."""


class McpConnection:
    """One server: a lazily opened `Client`, held by a task of its own.

    The SDK's client is an anyio context that must be exited by the task that entered it,
    while calls come from many request tasks; so a holder task enters it, hands it over,
    and exits it when told to stop or when the connection breaks.
    """

    def __init__(self, config: McpServerConfig, on_change: ChangeListener | None = None) -> None:
        self.config = config
        self.name = config.name
        self._on_change = on_change
        self._client: Client | None = None
        self._holder: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._lost = asyncio.Event()
        self._lock = asyncio.Lock()
        self._tools: list[Tool] | None = None
        # The last listing, kept when `_tools` is invalidated: served while a relisting
        # is slow, and used to check header-bound arguments.
        self._last_tools: list[Tool] = []
        self._down_until = 0.0
        self._down_reason = ""
        self._background: set[asyncio.Task[None]] = set()

    @property
    def connected(self) -> bool:
        return self._client is not None and self._holder is not None and not self._holder.done()

    # -- connection ------------------------------------------------------------------------

    async def client(self, *, retry_now: bool = False) -> Client:
        """The open client; connects if needed. `retry_now` ignores the fail-fast window."""
        async with self._lock:
            if self._client is not None and self.connected:
                return self._client
            if not retry_now and time.monotonic() < self._down_until:
                raise ServerUnavailable(self._down_reason)
            try:
                async with asyncio.timeout(max(self.config.timeout, MIN_CONNECT_TIMEOUT)):
                    self._client = await self._connect()
            except Exception as exc:
                self._down_reason = describe(exc)
                self._down_until = time.monotonic() + RECONNECT_AFTER
                log.warning("MCP server %s: cannot connect: %s", self.name, self._down_reason)
                raise ServerUnavailable(self._down_reason) from None
            self._down_until = 0.0
            self._tools = None
            return self._client

    async def _connect(self) -> Client:
        ready: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()
        self._lost.clear()
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
                async with _listening(self, client):
                    await stop.wait()
        except asyncio.CancelledError:
            if not ready.done():
                ready.cancel()
            raise
        except Exception as exc:
            if not ready.done():
                ready.set_exception(exc)
            else:
                log.warning("MCP server %s: connection lost: %s", self.name, describe(exc))
        finally:
            self._lost.set()

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
                params = StdioServerParameters(
                    command=config.command, args=config.args, env=config.env or None
                )
                errlog = await stack.enter_async_context(_stderr_to_log(self.name))
                server = stdio_client(params, errlog=errlog)
            client = Client(server, cache=None, message_handler=self._on_message)
            yield await stack.enter_async_context(client)

    async def _on_message(self, message: object) -> None:
        """Session-era list-change notices (a 2026-era upstream's arrive by `_listening`)."""
        if isinstance(message, ToolListChangedNotification):
            await self._changed("tools")
        elif isinstance(message, ResourceListChangedNotification):
            await self._changed("resources")
        elif isinstance(message, PromptListChangedNotification):
            await self._changed("prompts")

    async def _changed(self, what: str) -> None:
        if what == "tools":
            self._tools = None
        if self._on_change is not None:
            try:
                await self._on_change(self.name, what)
            except Exception:
                log.exception("MCP server %s: a change listener failed", self.name)

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

    async def keep_connected(self) -> None:
        """Run until cancelled: connect, and reconnect with backoff whenever the link breaks.

        For servers the gateway exposes, so their tools are listed without a first caller
        paying for the connect, and come back by themselves after an outage.
        """
        delay = BACKOFF_FIRST
        while True:
            was_connected = self.connected
            try:
                await self.client(retry_now=True)
                await self.tools()
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            delay = BACKOFF_FIRST
            if not was_connected:
                # Its tools (re)appear for our clients.
                await self._changed("tools")
            await self._lost.wait()
            self._client = None
            await self._changed("tools")

    # -- requests --------------------------------------------------------------------------

    async def _request(self, run: Callable[[Client], Awaitable[T]]) -> T:
        """One request with the server's timeout; a broken transport resets the connection.

        Raises `ServerUnavailable`, `TimeoutError`, or the upstream's `MCPError`.
        """
        client = await self.client()
        try:
            async with asyncio.timeout(self.config.timeout):
                return await run(client)
        except (TimeoutError, ServerUnavailable):
            raise
        except MCPError as exc:
            if exc.code == REQUEST_TIMEOUT:
                raise TimeoutError from exc
            if exc.code == CONNECTION_CLOSED:
                await self.reset()
                raise ConnectionBroken(exc.message) from exc
            raise
        except Exception as exc:
            # A transport failure: the connection may be half-dead, so start afresh next time.
            await self.reset()
            raise ConnectionBroken(describe(exc)) from exc

    async def tools(self) -> list[Tool]:
        """The server's tools, cached until it says they changed or the connection breaks."""
        if self._tools is not None and self.connected:
            return self._tools
        tools = await self._request(_all_tools)
        self._tools = self._last_tools = tools
        return tools

    def cached_tools(self) -> list[Tool]:
        """The last listing, without asking the server (possibly out of date)."""
        return self._last_tools

    async def call_tool(self, tool: str, arguments: dict[str, Any]) -> CallToolResult:
        timeout = self.config.timeout
        return await self._request(
            lambda c: c.call_tool(tool, arguments, read_timeout_seconds=timeout)
        )

    def offers(self, capability: str) -> bool:
        """Whether the connected server offers `resources` or `prompts`."""
        if self._client is None or not self.connected:
            return False
        return getattr(self._client.server_capabilities, capability, None) is not None

    async def resources(self) -> list[Resource]:
        return await self._request(_all_resources)

    async def resource_templates(self) -> list[ResourceTemplate]:
        return await self._request(_all_templates)

    async def read_resource(self, uri: str) -> ReadResourceResult:
        return await self._request(lambda c: c.read_resource(uri))

    async def prompts(self) -> list[Prompt]:
        return await self._request(_all_prompts)

    async def get_prompt(self, name: str, arguments: dict[str, str] | None) -> GetPromptResult:
        return await self._request(lambda c: c.get_prompt(name, arguments))


async def _all_tools(client: Client) -> list[Tool]:
    found: list[Tool] = []
    cursor: str | None = None
    for _ in range(_MAX_PAGES):
        page = await client.list_tools(cursor=cursor)
        found += page.tools
        if (cursor := page.next_cursor) is None:
            break
    return found


async def _all_resources(client: Client) -> list[Resource]:
    found: list[Resource] = []
    cursor: str | None = None
    for _ in range(_MAX_PAGES):
        page = await client.list_resources(cursor=cursor)
        found += page.resources
        if (cursor := page.next_cursor) is None:
            break
    return found


async def _all_templates(client: Client) -> list[ResourceTemplate]:
    found: list[ResourceTemplate] = []
    cursor: str | None = None
    for _ in range(_MAX_PAGES):
        page = await client.list_resource_templates(cursor=cursor)
        found += page.resource_templates
        if (cursor := page.next_cursor) is None:
            break
    return found


async def _all_prompts(client: Client) -> list[Prompt]:
    found: list[Prompt] = []
    cursor: str | None = None
    for _ in range(_MAX_PAGES):
        page = await client.list_prompts(cursor=cursor)
        found += page.prompts
        if (cursor := page.next_cursor) is None:
            break
    return found


@contextlib.asynccontextmanager
async def _listening(connection: McpConnection, client: Client) -> AsyncIterator[None]:
    """On a 2026-era upstream, list changes arrive on a `subscriptions/listen` stream."""
    if client.protocol_version not in MODERN_PROTOCOL_VERSIONS:
        yield
        return
    caps = client.server_capabilities
    tools = bool(caps.tools and caps.tools.list_changed)
    resources = bool(caps.resources and caps.resources.list_changed)
    prompts = bool(caps.prompts and caps.prompts.list_changed)
    if not (tools or resources or prompts):
        yield
        return

    async def listen() -> None:
        try:
            async with client.listen(
                tools_list_changed=tools,
                resources_list_changed=resources,
                prompts_list_changed=prompts,
            ) as subscription:
                async for event in subscription:
                    if isinstance(event, ToolsListChanged):
                        await connection._changed("tools")
                    elif isinstance(event, ResourcesListChanged):
                        await connection._changed("resources")
                    elif isinstance(event, PromptsListChanged):
                        await connection._changed("prompts")
        except (ListenNotSupportedError, MCPError) as exc:
            log.info("MCP server %s: no change notices: %s", connection.name, describe(exc))
        except Exception as exc:
            log.warning("MCP server %s: change notices lost: %s", connection.name, describe(exc))

    task = asyncio.create_task(listen(), name=f"mcp-listen-{connection.name}")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task


@contextlib.asynccontextmanager
async def _stderr_to_log(server: str) -> AsyncIterator[TextIO]:
    """A pipe for a child server's stderr whose lines go to our log, not raw onto ours.

    A raw child's stderr would interleave with the gateway's JSON log lines; here each
    line becomes one log record naming the server.
    """
    read_fd, write_fd = os.pipe()
    writer = os.fdopen(write_fd, "w")
    reader = os.fdopen(read_fd, "rb")
    loop = asyncio.get_running_loop()
    stream = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(stream), reader
    )
    child_log = logging.getLogger("gateway.mcp_upstream.stderr")

    async def pump() -> None:
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip()
            if text:
                child_log.info("%s", text, extra={"fields": {"mcp_server": server}})

    task = asyncio.create_task(pump(), name=f"mcp-stderr-{server}")
    try:
        yield writer
    finally:
        writer.close()  # the child's copy stays open until it exits; then the pump ends
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await task
        except TimeoutError:
            task.cancel()
        transport.close()


def describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return describe(exc.exceptions[0])
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, MCPError):
        return exc.message
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
