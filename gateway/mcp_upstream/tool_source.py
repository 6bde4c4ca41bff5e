"""Upstream MCP tools for the agents: the agent service's `ToolSource`.

A tool is offered to the model as the OpenAI function `<server>__<tool>`. Every failure
(server down, tool error, timeout) comes back as a result string the model can read, never
as an exception that would fail the agent's turn. A tool that can only run as a task
(`execution.taskSupport: "required"`) is not offered: a plain call to it always fails.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, TextContent, Tool

from gateway.agents.schemas import AgentRecord
from gateway.agents.tools import Tool as AgentTool
from gateway.agents.tools import ToolContext
from gateway.mcp_upstream.connection import ConnectionBroken, ServerUnavailable, describe
from gateway.mcp_upstream.servers import McpServers

log = logging.getLogger("gateway.mcp_upstream")

SEPARATOR = "__"
# OpenAI function names: [A-Za-z0-9_-]{1,64}; MCP tool names may also hold '.' and be longer.
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_MAX_FUNCTION_NAME = 64


class McpToolSource:
    """The tools of the configured MCP servers, as the agents' loop consumes them."""

    def __init__(self, servers: McpServers) -> None:
        self._servers = servers
        # function name -> (server, tool), filled as servers' tools are listed.
        self._functions: dict[str, tuple[str, str]] = {}

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
        """(function name, server, tool) for every callable tool of these servers that answer."""
        connections = [c for s in dict.fromkeys(servers) if (c := self._servers.get(s)) is not None]
        listed = await asyncio.gather(*(c.tools() for c in connections), return_exceptions=True)
        found: list[tuple[str, str, Tool]] = []
        for connection, tools in zip(connections, listed, strict=True):
            server = connection.name
            if isinstance(tools, BaseException):
                log.warning("MCP server %s: cannot list tools: %s", server, describe(tools))
                continue
            taken: set[str] = set()
            for tool in tools:
                if requires_task(tool):
                    continue
                name = function_name(server, tool.name, taken)
                taken.add(name)
                self._functions[name] = (server, tool.name)
                found.append((name, server, tool))
        return found

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
        connection = self._servers.get(server)
        if connection is None:
            return f"Error: no MCP server named '{server}' is configured"
        label = f"{server}{SEPARATOR}{tool}"
        timeout = connection.config.timeout
        try:
            result = await connection.call_tool(tool, dict(arguments))
        except ConnectionBroken as exc:
            return f"Error: MCP tool '{label}' failed: {exc}"
        except ServerUnavailable as exc:
            return f"Error: MCP server '{server}' is unavailable: {exc}"
        except TimeoutError:
            return f"Error: MCP tool '{label}' timed out after {timeout:g} s"
        except MCPError as exc:
            return f"Error: MCP tool '{label}' failed: {exc.message}"
        text = render(result)
        return f"Error: MCP tool '{label}' failed: {text}" if result.is_error else text

    def _split(self, function: str) -> tuple[str, str] | None:
        if function in self._functions:
            return self._functions[function]
        # Not listed yet (e.g. after a restart): the longest configured server prefix wins.
        for server in sorted(self._servers.connections, key=len, reverse=True):
            prefix = server + SEPARATOR
            if function.startswith(prefix) and len(function) > len(prefix):
                return server, function[len(prefix) :]
        return None


def requires_task(tool: Tool) -> bool:
    """A tool that only runs as a task (2025-11-25 `execution.taskSupport: "required"`)."""
    return tool.execution is not None and tool.execution.task_support == "required"


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
