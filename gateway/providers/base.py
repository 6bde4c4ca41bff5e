"""Shapes shared by every provider client: resolved provider spec, model info, call stats."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import SecretStr

from gateway.providers.profiles import Profile

ModelSource = Literal["live", "fallback", "config"]


@dataclass(frozen=True)
class ProviderSpec:
    """A provider after settings and environment are merged."""

    name: str
    profile: Profile
    base_url: str
    api_key: SecretStr | None
    enabled: bool
    # Why it is disabled, naming the variable to set; empty when enabled.
    disabled_reason: str = ""
    static_models: tuple[str, ...] | None = None
    context_windows: dict[str, int] = field(default_factory=dict)
    connect_timeout: float = 10.0
    read_timeout: float = 600.0
    max_connections: int = 1000
    models_ttl: float = 300.0
    max_attempts: int = 3
    retry_base_delay: float = 0.5
    retry_max_delay: float = 10.0


@dataclass(frozen=True)
class ModelInfo:
    id: str
    provider: str
    context_window: int | None
    source: ModelSource

    @property
    def handle(self) -> str:
        return f"{self.provider}/{self.id}"


@dataclass
class CallStats:
    """What one upstream call cost; filled by the provider client, read by metrics and logs."""

    provider: str
    model: str
    started: float = field(default_factory=time.perf_counter)
    upstream_seconds: float = 0.0
    attempts: int = 0
    first_token_seconds: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Parts of the two above: prompt tokens served from the provider's cache, and
    # completion tokens spent reasoning (both priced differently by some providers).
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    outcome: str = "success"

    @property
    def retries(self) -> int:
        return max(0, self.attempts - 1)

    def add_usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        prompt = usage.get("prompt_tokens")
        completion = usage.get("completion_tokens")
        if isinstance(prompt, int):
            self.prompt_tokens = prompt
        if isinstance(completion, int):
            self.completion_tokens = completion
        # OpenAI nests the details; Moonshot puts `cached_tokens` at the top level.
        details = usage.get("prompt_tokens_details")
        cached = details.get("cached_tokens") if isinstance(details, dict) else None
        if cached is None:
            cached = usage.get("cached_tokens")
        if isinstance(cached, int):
            self.cached_tokens = cached
        details = usage.get("completion_tokens_details")
        reasoning = details.get("reasoning_tokens") if isinstance(details, dict) else None
        if isinstance(reasoning, int):
            self.reasoning_tokens = reasoning


# Called by a provider client when one upstream attempt ends: (stats, the attempt's
# perf_counter start, its error code or None). Tracing sets it; None costs nothing.
AttemptHook = Callable[[CallStats, float, str | None], None]
