"""The services object: everything a request needs, built once per app and closed at shutdown.

Both facades (HTTP and MCP) reach the same instance through the app state.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from gateway.providers.base import ProviderSpec
from gateway.providers.openai_compat import OpenAICompatibleClient
from gateway.providers.registry import build_clients, provider_specs
from gateway.routing.router import Router
from gateway.settings import Settings

log = logging.getLogger("gateway")


class Services:
    def __init__(self, settings: Settings, environ: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.specs: dict[str, ProviderSpec] = provider_specs(
            settings, os.environ if environ is None else environ
        )
        self.clients: dict[str, OpenAICompatibleClient] = build_clients(self.specs)
        self.router = Router(self.specs, self.clients, settings.aliases)

    async def start(self) -> None:
        for client in self.clients.values():
            await client.start()
        enabled = ", ".join(self.clients) or "none"
        log.info("providers enabled: %s", enabled)

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()

    async def readiness_problems(self) -> list[str]:
        problems: list[str] = []
        if not self.clients:
            problems.append("no provider is enabled: set KIMI_API_KEY, OPENAI_API_KEY or configure one")
        return problems
