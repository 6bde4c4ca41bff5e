"""Shapes shared by every provider: resolved provider spec, model info, the call record."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from pydantic import SecretStr

from gateway.providers.profiles import Profile
from gateway.wire.internal import Usage

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
    # The environment variable that holds (or would hold) its key.
    key_env: str = ""
    static_models: tuple[str, ...] | None = None
    context_windows: dict[str, int] = field(default_factory=dict)
    connect_timeout: float = 10.0
    read_timeout: float = 600.0
    max_connections: int = 1000
    models_ttl: float = 300.0
    max_attempts: int = 3
    retry_base_delay: float = 0.5
    retry_max_delay: float = 10.0
    # An Anthropic-compatible Messages endpoint of a provider whose own wire is OpenAI's
    # (Moonshot serves one): `/v1/messages` requests for it can then go natively.
    anthropic_base_url: str | None = None


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
class CallRecord:
    """One upstream call, as metrics, logs and traces read it: filled once, in one place.

    The chat service creates it when it has resolved the target, the transport fills
    in attempts, time and usage, and the facade leaves the request's records where the
    observability middleware finds them (`scope["state"]["call_stats"]`).
    """

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
    # Who asked (a virtual key's name, for spend and usage) and the handle that served.
    key_name: str | None = None
    handle: str | None = None

    @property
    def retries(self) -> int:
        return max(0, self.attempts - 1)

    def add_usage(self, usage: Usage | None) -> None:
        if usage is None:
            return
        self.prompt_tokens = usage.prompt_tokens
        self.completion_tokens = usage.completion_tokens
        self.cached_tokens = usage.cached_tokens
        self.reasoning_tokens = usage.reasoning_tokens

    def fail(self, error: BaseException) -> None:
        """Mark the call failed with `error`'s code, unless a failure was recorded already."""
        if self.outcome == "success":
            code = getattr(error, "code", None)
            self.outcome = code if isinstance(code, str) and code else "error"


# Called by a transport when one upstream attempt ends: (record, the attempt's
# perf_counter start, its error code or None). Tracing sets it; None costs nothing.
AttemptHook = Callable[[CallRecord, float, str | None], None]
