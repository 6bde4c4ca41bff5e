"""Pieces shared by the orchestrator and the Python load generators: request
bodies, percentiles, and the result shape every load generator reports."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

SYSTEM_PROMPT = "You are a concise assistant."
USER_PROMPT = "Say hello to the benchmark in one short sentence."
# Marks the one line of a load generator's output that carries its result.
RESULT_PREFIX = "BENCH_JSON "


MESSAGES_PATH = "/v1/messages"
RESPONSES_PATH = "/v1/responses"


def request_body(url: str, model: str, stream: bool) -> bytes:
    """The body for the API at `url`: the same small request in its wire format."""
    if url.endswith(MESSAGES_PATH):
        return messages_body(model, stream)
    if url.endswith(RESPONSES_PATH):
        return responses_body(model, stream)
    return chat_body(model, stream)


def responses_body(model: str, stream: bool) -> bytes:
    """The chat request below as the OpenAI SDK's `responses.create` sends it."""
    body: dict[str, Any] = {
        "model": model,
        "instructions": SYSTEM_PROMPT,
        "input": USER_PROMPT,
        "max_output_tokens": 64,
        "temperature": 0.2,
    }
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()


def messages_body(model: str, stream: bool) -> bytes:
    """The chat request below as the Anthropic SDK sends it to `/v1/messages`."""
    body: dict[str, Any] = {
        "model": model,
        "system": SYSTEM_PROMPT,
        "messages": [{"role": "user", "content": USER_PROMPT}],
        "max_tokens": 64,
        "temperature": 0.2,
    }
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()


def chat_body(model: str, stream: bool) -> bytes:
    """A realistic small request, as an OpenAI SDK sends it."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": USER_PROMPT},
        ],
        "max_tokens": 64,
        "temperature": 0.2,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body, separators=(",", ":")).encode()


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no data."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: list[float]) -> float | None:
    clean = sorted(v for v in values if v is not None)
    if not clean:
        return None
    mid = len(clean) // 2
    return clean[mid] if len(clean) % 2 else (clean[mid - 1] + clean[mid]) / 2


@dataclass
class ClosedLoopResult:
    """What a closed-loop run reports (wrk or the Python fallback)."""

    requests: int  # completed responses, any status
    errors: dict[str, int] = field(
        default_factory=dict
    )  # status (non-2xx), connect, read, write, timeout
    duration_s: float = 0.0
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None

    @property
    def ok(self) -> int:
        return self.requests - self.errors.get("status", 0)

    @property
    def rps(self) -> float:
        return self.ok / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"], data["rps"] = self.ok, self.rps
        return data


@dataclass
class OpenLoopResult:
    """What the open-loop generator reports."""

    sent: int
    ok: int
    errors: int
    error_sample: str | None
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    latency_max_ms: float | None
    ttft_p50_ms: float | None
    ttft_p99_ms: float | None
    max_lag_ms: float  # how late the generator fired its worst request (it should be ~0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def emit(result: ClosedLoopResult | OpenLoopResult) -> None:
    print(RESULT_PREFIX + json.dumps(asdict(result)), flush=True)


def parse_emitted(output: str) -> dict[str, Any] | None:
    for line in output.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    return None
