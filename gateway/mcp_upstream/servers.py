"""Every configured upstream MCP server: one `McpConnection` each, owned by the services object.

Servers marked `expose = true` are connected at start-up, in the background (the gateway
never waits on them), and kept connected; the others open on an agent's first use.
Listeners hear when an upstream's tools, resources or prompts change, or when a server
comes or goes (its tools appear or disappear).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from gateway.mcp_upstream.connection import ChangeListener, McpConnection
from gateway.settings import McpServerConfig

log = logging.getLogger("gateway.mcp_upstream")


class McpServers:
    def __init__(self, configs: Sequence[McpServerConfig]) -> None:
        self.connections = {c.name: McpConnection(c, self._changed) for c in configs}
        self._listeners: list[ChangeListener] = []
        self._keepers: list[asyncio.Task[None]] = []

    def get(self, name: str) -> McpConnection | None:
        return self.connections.get(name)

    def exposed(self) -> list[McpConnection]:
        """The servers federated at `/mcp`, in config order."""
        return [c for c in self.connections.values() if c.config.expose]

    def add_listener(self, listener: ChangeListener) -> None:
        """`listener(server, what)`, what in `tools`, `resources`, `prompts`."""
        self._listeners.append(listener)

    async def _changed(self, server: str, what: str) -> None:
        for listener in self._listeners:
            try:
                await listener(server, what)
            except Exception:
                log.exception("MCP server %s: a change listener failed", server)

    def start(self) -> None:
        """Connect the exposed servers in the background; returns at once."""
        for connection in self.exposed():
            self._keepers.append(
                asyncio.create_task(connection.keep_connected(), name=f"mcp-keep-{connection.name}")
            )

    async def close(self) -> None:
        keepers, self._keepers = self._keepers, []
        for task in keepers:
            task.cancel()
        for task in keepers:
            with contextlib.suppress(BaseException):
                await task
        await asyncio.gather(*(c.reset() for c in self.connections.values()))
