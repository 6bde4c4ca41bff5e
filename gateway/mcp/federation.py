"""Upstream MCP servers federated at `/mcp`: their tools, resources and prompts, namespaced.

A server with `expose = true` contributes its tools as `<server>__<tool>` and its prompts
as `<server>__<prompt>`, with schemas, annotations and descriptions as the upstream sent
them. Resources keep their URIs (a tool's `resource_link` must stay readable through us),
and get the server's prefix on their names. Calls are proxied on the process's connection
to that server with the server's timeout, and the upstream's result is returned as it came:
content blocks, `structuredContent`, `isError`, `_meta`.

An upstream that is down, slow or failing costs only its own tools: they drop out of the
listing while it is down, and a call to one gets an error result. A tool that can only run
as a task is not listed (the gateway does not serve tasks).

Every proxied call is counted (`gateway_mcp_upstream_calls_total{server, outcome}` and a
duration histogram) and logged in one line with the tool, the key's name, the outcome and
the duration; the arguments only when `GATEWAY_MCP_LOG_ARGUMENTS` asks for them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import (
    PromptsListChanged,
    ResourcesListChanged,
    ServerEvent,
    ToolsListChanged,
)
from mcp.types import (
    INVALID_PARAMS,
    SERVER_INFO_META_KEY,
    CallToolResult,
    GetPromptResult,
    Prompt,
    ReadResourceResult,
    Resource,
    ResourceTemplate,
    TextContent,
    Tool,
)

from gateway.mcp_upstream.connection import McpConnection, ServerUnavailable, describe
from gateway.mcp_upstream.servers import McpServers
from gateway.mcp_upstream.tool_source import SEPARATOR, requires_task
from gateway.observability.metrics import Metrics
from gateway.tenants.caller import Caller

log = logging.getLogger("gateway.mcp.federation")
T = TypeVar("T")
R = TypeVar("R", CallToolResult, ReadResourceResult, GetPromptResult)

# How long a listing waits for an upstream that has an older listing to offer instead.
LIST_WAIT = 2.0
# MCP names: [A-Za-z0-9_.-]{1,128}; a prefixed name longer than that is not served.
_MAX_NAME = 128
_EVENTS: dict[str, ServerEvent] = {
    "tools": ToolsListChanged(),
    "resources": ResourcesListChanged(),
    "prompts": PromptsListChanged(),
}


class Federation:
    def __init__(
        self,
        servers: McpServers,
        metrics: Metrics,
        announce: Callable[[ServerEvent], Awaitable[None]],
        *,
        log_arguments: bool = False,
    ) -> None:
        self._servers = servers
        self._metrics = metrics
        self._announce = announce
        self._log_arguments = log_arguments
        # `tools/list_changed` and friends from an upstream reach our listeners.
        servers.add_listener(self._upstream_changed)

    @property
    def active(self) -> bool:
        return bool(self._servers.exposed())

    async def _upstream_changed(self, server: str, what: str) -> None:
        connection = self._servers.get(server)
        if connection is not None and connection.config.expose and what in _EVENTS:
            await self._announce(_EVENTS[what])

    # -- tools -----------------------------------------------------------------------------

    async def tools(self) -> list[Tool]:
        """The exposed servers' tools, renamed `<server>__<tool>`; a server down adds none."""
        listed = await self._gather(_tools_or_stale)
        found: list[Tool] = []
        for connection, tools in listed:
            for tool in tools:
                name = f"{connection.name}{SEPARATOR}{tool.name}"
                if requires_task(tool) or len(name) > _MAX_NAME:
                    continue
                found.append(tool.model_copy(update={"name": name}))
        return found

    def route(self, name: str) -> tuple[McpConnection, str] | None:
        """(connection, upstream name) for a namespaced name of an exposed server.

        Worked out from the name alone, so a call may reach any worker or replica,
        whichever one listed the tools.
        """
        best: McpConnection | None = None
        for connection in self._servers.exposed():
            prefix = connection.name + SEPARATOR
            if name.startswith(prefix) and len(name) > len(prefix):
                if best is None or len(connection.name) > len(best.name):
                    best = connection
        if best is None:
            return None
        return best, name[len(best.name) + len(SEPARATOR) :]

    def input_schema(self, name: str) -> dict[str, Any] | None:
        """The listed input schema of a federated tool, if this process has it cached."""
        target = self.route(name)
        if target is None or not target[0].connected:
            return None
        connection, tool = target
        for known in connection.cached_tools():
            if known.name == tool:
                return known.input_schema
        return None

    async def call_tool(
        self,
        connection: McpConnection,
        tool: str,
        arguments: dict[str, Any],
        caller: Caller,
    ) -> CallToolResult:
        """Proxy one call; the upstream's result unchanged, or an error result of ours.

        A JSON-RPC error from the upstream (e.g. `-32602` for arguments it refuses) is
        raised as the same `MCPError`, so our client gets it as the upstream sent it.
        """
        name = f"{connection.name}{SEPARATOR}{tool}"
        start = time.perf_counter()
        outcome = "success"
        try:
            result = await connection.call_tool(tool, arguments)
            if result.is_error:
                outcome = "tool_error"
            return _as_ours(result)
        except ServerUnavailable as exc:
            outcome = "unavailable"
            return _error(f"MCP server '{connection.name}' is unavailable: {exc}")
        except TimeoutError:
            outcome = "timeout"
            return _error(f"MCP tool '{name}' timed out after {connection.config.timeout:g} s")
        except MCPError:
            outcome = "protocol_error"
            raise
        except Exception as exc:
            outcome = "internal_error"
            log.exception("MCP tool %s: proxying failed", name)
            return _error(f"MCP tool '{name}' failed in the gateway: {describe(exc)}")
        finally:
            self._record(connection.name, name, caller, outcome, start, arguments)

    def _record(
        self,
        server: str,
        tool: str,
        caller: Caller,
        outcome: str,
        start: float,
        arguments: dict[str, Any],
    ) -> None:
        seconds = time.perf_counter() - start
        self._metrics.mcp_upstream_call(server, outcome, seconds)
        fields: dict[str, Any] = {
            "server": server,
            "tool": tool,
            "key_name": caller.key_name,
            "outcome": outcome,
            "duration_ms": round(seconds * 1000, 3),
        }
        if self._log_arguments:
            fields["arguments"] = arguments
        log.info("mcp upstream call", extra={"fields": fields})

    # -- resources -------------------------------------------------------------------------

    async def resources(self) -> list[Resource]:
        listed = await self._gather(lambda c: c.resources(), capability="resources")
        return [
            r.model_copy(update={"name": f"{c.name}{SEPARATOR}{r.name}"})
            for c, found in listed
            for r in found
        ]

    async def resource_templates(self) -> list[ResourceTemplate]:
        listed = await self._gather(lambda c: c.resource_templates(), capability="resources")
        return [
            t.model_copy(update={"name": f"{c.name}{SEPARATOR}{t.name}"})
            for c, found in listed
            for t in found
        ]

    async def read_resource(self, uri: str) -> ReadResourceResult | None:
        """The first exposed server that has the URI answers; None when none has it.

        URIs are not namespaced, so the servers that offer resources are asked in config
        order; one that is down or does not know the URI is skipped.
        """
        for connection in self._servers.exposed():
            if not connection.offers("resources"):
                continue
            try:
                return _as_ours(await connection.read_resource(uri))
            except (MCPError, ServerUnavailable, TimeoutError) as exc:
                log.debug("MCP server %s: cannot read %s: %s", connection.name, uri, exc)
        return None

    # -- prompts ---------------------------------------------------------------------------

    async def prompts(self) -> list[Prompt]:
        listed = await self._gather(lambda c: c.prompts(), capability="prompts")
        return [
            p.model_copy(update={"name": f"{c.name}{SEPARATOR}{p.name}"})
            for c, found in listed
            for p in found
        ]

    async def get_prompt(
        self, connection: McpConnection, prompt: str, arguments: dict[str, str] | None
    ) -> GetPromptResult:
        try:
            return _as_ours(await connection.get_prompt(prompt, arguments))
        except (ServerUnavailable, TimeoutError) as exc:
            raise MCPError(
                INVALID_PARAMS,
                f"MCP server '{connection.name}' is unavailable: {describe(exc)}",
            ) from exc

    # -- helpers ---------------------------------------------------------------------------

    async def _gather(
        self,
        fetch: Callable[[McpConnection], Awaitable[list[T]]],
        capability: str | None = None,
    ) -> list[tuple[McpConnection, list[T]]]:
        """`fetch` on every connected exposed server at once; the ones that fail add nothing."""
        connections = [
            c
            for c in self._servers.exposed()
            if c.connected and (capability is None or c.offers(capability))
        ]
        listed = await asyncio.gather(*(fetch(c) for c in connections), return_exceptions=True)
        found: list[tuple[McpConnection, list[T]]] = []
        for connection, items in zip(connections, listed, strict=True):
            if isinstance(items, BaseException):
                log.warning("MCP server %s: cannot list: %s", connection.name, describe(items))
                continue
            found.append((connection, items))
        return found


def _as_ours(result: R) -> R:
    """The upstream's result without its `serverInfo` stamp: the SDK stamps ours instead.

    Everything else in `_meta` (trace context, the tool's own keys) stays as it came.
    """
    meta = result.meta
    if not meta or SERVER_INFO_META_KEY not in meta:
        return result
    rest = {k: v for k, v in meta.items() if k != SERVER_INFO_META_KEY}
    return result.model_copy(update={"meta": rest or None})


async def _tools_or_stale(connection: McpConnection) -> list[Tool]:
    """The server's tools; its last listing if relisting takes long (after a change notice).

    A slow upstream must not hold up everyone's `tools/list`.
    """
    stale = connection.cached_tools()
    if not stale:
        return await connection.tools()
    # Left running when we stop waiting, so the next listing finds it done.
    relisting = asyncio.ensure_future(connection.tools())
    relisting.add_done_callback(lambda t: t.cancelled() or t.exception())
    try:
        return await asyncio.wait_for(asyncio.shield(relisting), LIST_WAIT)
    except TimeoutError:
        return stale


def _error(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)
