"""`gateway mcp`: the MCP facade over stdio, for desktop clients that launch the gateway.

stdout carries only the protocol: logging goes to stderr, and while serving the SDK points
fd 1 at stderr so a stray print cannot corrupt the stream.
"""

from __future__ import annotations

import asyncio

from gateway.mcp.server import McpFacade
from gateway.observability.logging import configure_logging
from gateway.services import Services
from gateway.settings import Settings


def serve_stdio(settings: Settings) -> int:
    configure_logging(settings)  # stderr, in the configured format
    asyncio.run(_serve(settings))
    return 0


async def _serve(settings: Settings) -> None:
    services = Services(settings)
    await services.start()
    try:
        await McpFacade(services).run_stdio()
    finally:
        await services.close()
