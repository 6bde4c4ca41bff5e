"""Resolve a model handle to a provider client and the provider's own model id."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass

from cachetools import TTLCache

from gateway import errors
from gateway.providers.base import ModelInfo, ProviderSpec
from gateway.providers.provider import Provider
from gateway.routing.handles import parse_handle

_MAX_ROUTES = 4096


@dataclass(frozen=True)
class Route:
    handle: str
    client: Provider
    model: str
    info: ModelInfo | None

    @property
    def provider(self) -> str:
        return self.client.name


@dataclass(frozen=True)
class LLMConfig:
    """What an agent needs to know about its model, with its own knobs applied."""

    handle: str
    provider: str
    model: str
    context_window: int | None
    max_tokens: int | None
    max_reasoning_tokens: int | None
    enable_reasoner: bool
    # The model wants its reasoning back on earlier tool-call messages (Kimi's thinking
    # models refuse a history without it).
    resend_reasoning: bool = False


class Router:
    def __init__(
        self,
        specs: Mapping[str, ProviderSpec],
        clients: Mapping[str, Provider],
        aliases: Mapping[str, str] | None = None,
        *,
        cache_ttl: float = 60.0,
    ) -> None:
        self.specs = dict(specs)
        self.clients = dict(clients)
        self.aliases = dict(aliases or {})
        # handle → (route, expiry on the monotonic clock). A plain dict: looked up on every
        # chat request, where TTLCache's bookkeeping cost more than the rest of resolving.
        self._routes: dict[str, tuple[Route, float]] = {}
        self._ttl = cache_ttl
        self._configs: TTLCache[tuple[object, ...], LLMConfig] = TTLCache(
            maxsize=4096, ttl=cache_ttl
        )

    async def resolve(self, handle: str) -> Route:
        cached = self._routes.get(handle)
        now = time.monotonic()
        if cached is not None and now < cached[1]:
            return cached[0]
        route = await self._resolve(handle)
        if len(self._routes) >= _MAX_ROUTES:
            # Handles that name nothing are not cached (they raise), so this takes many
            # distinct valid handles; start over rather than track their ages.
            self._routes.clear()
        self._routes[handle] = (route, now + self._ttl)
        return route

    async def _resolve(self, handle: str) -> Route:
        if not handle or not handle.strip():
            raise errors.InvalidRequest("model must be a non-empty handle", param="model")
        target = self.aliases.get(handle, handle)
        provider, model = parse_handle(target)
        if provider is None or provider not in self.specs:
            # A bare id, or an id with `/` whose first part is not a provider of ours.
            return await self._resolve_bare(target)
        spec = self.specs[provider]
        if not spec.enabled:
            raise errors.ProviderNotEnabled(spec.disabled_reason, param="model")
        if not model:
            raise errors.InvalidRequest(
                f"model handle '{handle}' names no model; use '{provider}/<model id>'",
                param="model",
            )
        client = self.clients[provider]
        models = await client.models()
        info = next((m for m in models if m.id == model), None)
        if info is None and models and models[0].source != "fallback":
            raise errors.ModelNotFound(
                f"model '{model}' is not offered by provider '{provider}'", param="model"
            )
        return Route(f"{provider}/{model}", client, model, info)

    async def _resolve_bare(self, model: str) -> Route:
        candidates = [m for m in await self.list_models() if m.id == model]
        if len(candidates) == 1:
            info = candidates[0]
            return Route(info.handle, self.clients[info.provider], info.id, info)
        if candidates:
            names = ", ".join(sorted(m.handle for m in candidates))
            raise errors.InvalidRequest(
                f"model '{model}' is offered by several providers; use one of: {names}",
                param="model",
                code="ambiguous_model",
            )
        provider, _ = parse_handle(model)
        known = ", ".join(sorted(self.specs))
        if provider is not None:
            message = f"unknown provider '{provider}' in '{model}'; known providers: {known}"
        else:
            message = f"model '{model}' is not offered by any enabled provider"
        raise errors.ModelNotFound(message, param="model")

    async def list_models(self) -> list[ModelInfo]:
        """Models of every enabled provider; one slow provider does not block the rest."""
        results = await asyncio.gather(*(c.models() for c in self.clients.values()))
        return [m for models in results for m in models]

    async def llm_config(
        self,
        handle: str,
        *,
        context_window_limit: int | None = None,
        max_tokens: int | None = None,
        max_reasoning_tokens: int | None = None,
        enable_reasoner: bool = False,
    ) -> LLMConfig:
        key = (handle, context_window_limit, max_tokens, max_reasoning_tokens, enable_reasoner)
        config = self._configs.get(key)
        if config is not None:
            return config
        route = await self.resolve(handle)
        window = route.info.context_window if route.info else None
        if context_window_limit is not None:
            window = min(window, context_window_limit) if window else context_window_limit
        config = LLMConfig(
            handle=route.handle,
            provider=route.provider,
            model=route.model,
            context_window=window,
            max_tokens=max_tokens,
            max_reasoning_tokens=max_reasoning_tokens,
            enable_reasoner=enable_reasoner,
            resend_reasoning=_resends_reasoning(route),
        )
        self._configs[key] = config
        return config


def _resends_reasoning(route: Route) -> bool:
    rule = route.client.spec.profile.rule_for(route.model)
    return rule is not None and rule.resend_reasoning
