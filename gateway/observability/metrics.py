"""Every Prometheus metric of the gateway, defined here and nowhere else.

The names and labels are DESIGN.md's Metrics table, which dashboards and alerts
depend on. The registry belongs to one `Metrics` object, which the services object
owns; nothing is registered at import time.

Label values stay bounded: routes are templates, methods a fixed set, providers and
models come from configuration and the upstreams' model lists (anything else is
counted as `other`), outcomes are error codes. Children are resolved once per label
combination and kept, so the hot path does a dict lookup instead of `.labels()`.

With one worker the numbers are plain floats (`inprocess.py`), exposed through
prometheus-client at scrape time. With `--workers N > 1` prometheus-client runs in
multiprocess mode (see `multiprocess.py`) and `/metrics` sums every worker's files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from gateway.observability.inprocess import Family, FamilyCollector
from gateway.observability.multiprocess import ENV_VAR
from gateway.providers.base import CallRecord

# The classic text format: every Prometheus since 2.0 reads it, and our names need no escaping.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# The one label value for anything not known in advance (model, agent, tool, method, outcome).
OTHER = "other"

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_OUTCOME = re.compile(r"^[a-z0-9_.-]{1,64}$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
# Upstreams choose their own error codes; a model gets at most this many distinct ones.
_MAX_OUTCOMES = 32
# Distinct key names that become label values; any beyond are counted as `other`.
_MAX_KEYS = 1000

HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
LLM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
MCP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30)
# The gateway's own share is sub-millisecond when healthy; the buckets resolve that.
OVERHEAD_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5,
)  # fmt: skip

ModelCheck = Callable[[str, str], bool]


def _shared_gauge(name: str, doc: str, labels: tuple[str, ...], **kw: Any) -> Gauge:
    # Each worker reports its own requests in flight; the live workers' values are summed.
    return Gauge(name, doc, labels, multiprocess_mode="livesum", **kw)


def _max_gauge(name: str, doc: str, labels: tuple[str, ...], **kw: Any) -> Gauge:
    # A value every worker computes alike (a budget left, a cooldown): the largest one.
    return Gauge(name, doc, labels, multiprocess_mode="max", **kw)


_SHARED: dict[str, Callable[..., Any]] = {
    "counter": Counter,
    "gauge": _shared_gauge,
    "gauge_max": _max_gauge,
    "histogram": Histogram,
}
# The OpenTelemetry GenAI semantic conventions' recommended bucket boundaries.
GENAI_TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
GENAI_DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
GENAI_TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip


class _HttpSeries:
    __slots__ = ("duration", "overhead", "requests")

    def __init__(self, m: Metrics, method: str, route: str, status: int) -> None:
        self.requests = m.http_requests.labels(method, route, str(status))
        self.duration = m.http_duration.labels(method, route)
        self.overhead = m.overhead.labels(route)


class _LLMSeries:
    __slots__ = (
        "_errors", "_m", "_outcomes", "completion", "duration", "genai_duration", "genai_input",
        "genai_output", "genai_ttft", "labels", "prompt", "retries", "ttft",
    )  # fmt: skip

    def __init__(self, m: Metrics, provider: str, model: str) -> None:
        self._m = m
        self.labels = (provider, model)
        self.duration = m.llm_duration.labels(provider, model)
        self.ttft = m.llm_ttft.labels(provider, model)
        self.prompt = m.llm_tokens.labels(provider, model, "prompt")
        self.completion = m.llm_tokens.labels(provider, model, "completion")
        self.retries = m.llm_retries.labels(provider, model)
        self._outcomes: dict[str, Any] = {}
        genai = ("chat", provider, model)
        self.genai_input = m.genai_tokens.labels(*genai, "input")
        self.genai_output = m.genai_tokens.labels(*genai, "output")
        self.genai_duration = m.genai_duration.labels(*genai, "")
        self.genai_ttft = m.genai_ttft.labels(*genai)
        self._errors: dict[str, Any] = {}

    def genai_failed(self, outcome: str) -> Any:
        """The operation-duration child for a failure (`error_type` is our error code)."""
        child = self._errors.get(outcome)
        if child is None:
            label = outcome if outcome in self._outcomes else OTHER
            child = self._errors[outcome] = self._m.genai_duration.labels(
                "chat", *self.labels, label
            )
        return child

    def requests(self, outcome: str) -> Any:
        child = self._outcomes.get(outcome)
        if child is None:
            if not _OUTCOME.match(outcome) or len(self._outcomes) >= _MAX_OUTCOMES:
                outcome = OTHER
            child = self._m.llm_requests.labels(*self.labels, outcome)
            if len(self._outcomes) < _MAX_OUTCOMES:
                self._outcomes[outcome] = child
        return child


class Metrics:
    """The gateway's metric objects and their cached label children.

    `providers` and `is_listed` say which provider and model names may become label
    values; without them every name is accepted (tools and unit tests).
    """

    def __init__(
        self,
        *,
        providers: Collection[str] | None = None,
        is_listed: ModelCheck | None = None,
    ) -> None:
        self.multiprocess_dir = _multiprocess_dir()
        self.registry = CollectorRegistry()
        self._providers = providers
        self._is_listed = is_listed
        self._http: dict[tuple[str, str, int], _HttpSeries] = {}
        self._llm: dict[tuple[str, str], _LLMSeries] = {}
        # tool -> the outcomes it has been counted under (upstream codes reach them too).
        self._tool_outcomes: dict[str, set[str]] = {}
        self._keys: set[str] = set()
        families: list[Family] = []
        self._define(families)
        if self.multiprocess_dir is None:
            self.registry.register(FamilyCollector(families))

    def _define(self, families: list[Family]) -> None:
        def metric(kind: str, name: str, doc: str, labels: tuple[str, ...] = (), **kw: Any) -> Any:
            if self.multiprocess_dir is not None:
                # Samples go to this worker's files, which `exposition` sums.
                return _SHARED[kind](name, doc, labels, registry=self.registry, **kw)
            kind = "gauge" if kind == "gauge_max" else kind
            family = Family(kind, name, doc, labels, kw.get("buckets", ()))
            families.append(family)
            return family

        provider_model = ("provider", "model")
        self.http_requests = metric(
            "counter",
            "gateway_http_requests_total",
            "HTTP requests answered, by route template and status.",
            ("method", "route", "status"),
        )
        self.http_duration = metric(
            "histogram",
            "gateway_http_request_duration_seconds",
            "Time from a request's arrival to its last response byte (or the client leaving).",
            ("method", "route"),
            buckets=HTTP_BUCKETS,
        )
        in_flight = metric(
            "gauge", "gateway_http_requests_in_flight", "HTTP requests being served right now."
        )
        # Touched twice per request: hold the value itself, not its family.
        self.in_flight = in_flight.labels() if isinstance(in_flight, Family) else in_flight
        self.llm_requests = metric(
            "counter",
            "gateway_llm_requests_total",
            "Upstream model calls, by outcome: success or the error code.",
            (*provider_model, "outcome"),
        )
        self.llm_duration = metric(
            "histogram",
            "gateway_llm_request_duration_seconds",
            "Time spent waiting on the upstream for one call, retries included.",
            provider_model,
            buckets=LLM_BUCKETS,
        )
        self.llm_ttft = metric(
            "histogram",
            "gateway_llm_time_to_first_token_seconds",
            "Time from sending a streamed call upstream to its first event.",
            provider_model,
            buckets=TTFT_BUCKETS,
        )
        self.llm_tokens = metric(
            "counter",
            "gateway_llm_tokens_total",
            "Tokens reported by the upstreams' usage.",
            (*provider_model, "kind"),
        )
        self.llm_retries = metric(
            "counter",
            "gateway_llm_retries_total",
            "Upstream attempts beyond the first.",
            provider_model,
        )
        self.overhead = metric(
            "histogram",
            "gateway_overhead_seconds",
            "Time spent in the gateway itself: request duration minus upstream wait.",
            ("route",),
            buckets=OVERHEAD_BUCKETS,
        )
        self.agent_turns = metric(
            "counter", "gateway_agent_turns_total", "Agent turns run.", ("agent",)
        )
        self.agent_steps = metric(
            "counter",
            "gateway_agent_steps_total",
            "Model calls made inside agent turns.",
            ("agent",),
        )
        self.mcp_tool_calls = metric(
            "counter", "gateway_mcp_tool_calls_total", "MCP tool calls served, by outcome.",
            ("tool", "outcome"),
        )  # fmt: skip
        # Tenants: `key` is a virtual key's name ("static", "admin" or "anonymous" for
        # the others); names are chosen by the admin, and capped at _MAX_KEYS.
        self.llm_cost = metric(
            "counter",
            "gateway_llm_cost_usd_total",
            "What upstream calls cost, in USD, from the price table.",
            provider_model,
        )
        self.key_cost = metric(
            "counter", "gateway_key_cost_usd_total", "Spend per gateway key, in USD.", ("key",)
        )
        self.key_tokens = metric(
            "counter",
            "gateway_key_tokens_total",
            "Tokens used per gateway key.",
            ("key", "kind"),
        )
        self.key_limited = metric(
            "counter",
            "gateway_key_limited_total",
            "Requests refused by a key's limits, by reason: rpm, tpm or budget.",
            ("key", "reason"),
        )
        self.key_requests = metric(
            "counter", "gateway_key_requests_total", "Requests admitted per gateway key.", ("key",)
        )
        redis_down = metric(
            "counter",
            "gateway_redis_unavailable_total",
            "Limit checks that could not reach Redis (let through or refused, as configured).",
        )
        self.redis_unavailable = (
            redis_down.labels() if isinstance(redis_down, Family) else redis_down
        )
        self.key_budget_left = metric(
            "gauge_max",
            "gateway_key_budget_remaining_usd",
            "What a key with a budget may still spend in its current period, in USD.",
            ("key",),
        )
        # Model groups (`[models.<name>]`): bounded by the configuration.
        self.fallbacks = metric(
            "counter",
            "gateway_llm_fallbacks_total",
            "Requests of a model group sent on to its next target after a retryable failure.",
            ("group", "from_target", "to_target"),
        )
        self.target_cooldown = metric(
            "gauge_max",
            "gateway_target_cooldown",
            "1 while a model group's target rests after failures in a row, else 0.",
            ("group", "target"),
        )
        # The OpenTelemetry GenAI semantic conventions, beside our own, so dashboards
        # built for other AI gateways work too (attribute dots become underscores).
        genai = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model")
        self.genai_tokens = metric(
            "histogram",
            "gen_ai_client_token_usage",
            "Tokens used per operation, by gen_ai_token_type (input or output).",
            (*genai, "gen_ai_token_type"),
            buckets=GENAI_TOKEN_BUCKETS,
        )
        self.genai_duration = metric(
            "histogram",
            "gen_ai_client_operation_duration",
            "Duration of a GenAI operation in seconds; error_type is set when it failed.",
            (*genai, "error_type"),
            buckets=GENAI_DURATION_BUCKETS,
        )
        self.genai_ttft = metric(
            "histogram",
            "gen_ai_server_time_to_first_token",
            "Seconds until the first token of a streamed reply.",
            genai,
            buckets=GENAI_TTFT_BUCKETS,
        )
        self.mcp_upstream_calls = metric(
            "counter",
            "gateway_mcp_upstream_calls_total",
            "MCP tool calls proxied to federated upstream servers, by outcome.",
            ("server", "outcome"),
        )
        self.mcp_upstream_duration = metric(
            "histogram",
            "gateway_mcp_upstream_call_duration_seconds",
            "Duration of MCP tool calls proxied to federated upstream servers.",
            ("server",),
            buckets=MCP_BUCKETS,
        )

    # -- recording -----------------------------------------------------------------

    def observe_http(
        self, method: str, route: str, status: int, duration: float, overhead: float
    ) -> None:
        """One finished HTTP request; `route` must already be a template."""
        if method not in _METHODS:
            method = OTHER
        series = self._http.get((method, route, status))
        if series is None:
            series = self._http[(method, route, status)] = _HttpSeries(self, method, route, status)
        series.requests.inc()
        series.duration.observe(duration)
        series.overhead.observe(overhead)

    def record_call(self, stats: CallRecord) -> None:
        """One upstream call (all its attempts), from the provider client's stats."""
        series = self._llm.get((stats.provider, stats.model))
        if series is None:
            series = self._llm_series(stats.provider, stats.model)
        series.requests(stats.outcome).inc()
        series.duration.observe(stats.upstream_seconds)
        if stats.outcome == "success":
            series.genai_duration.observe(stats.upstream_seconds)
        else:
            series.genai_failed(stats.outcome).observe(stats.upstream_seconds)
        if stats.first_token_seconds is not None:
            series.ttft.observe(stats.first_token_seconds)
            series.genai_ttft.observe(stats.first_token_seconds)
        if stats.prompt_tokens:
            series.prompt.inc(stats.prompt_tokens)
            series.genai_input.observe(stats.prompt_tokens)
        if stats.completion_tokens:
            series.completion.inc(stats.completion_tokens)
            series.genai_output.observe(stats.completion_tokens)
        if stats.attempts > 1:
            series.retries.inc(stats.attempts - 1)

    def _llm_series(self, provider: str, model: str) -> _LLMSeries:
        known_provider = self._providers is None or provider in self._providers
        if known_provider and (self._is_listed is None or self._is_listed(provider, model)):
            key = (provider, model)
        else:
            # Only listed names are cached as keys, so arbitrary model ids cannot grow this.
            key = (provider if known_provider else OTHER, OTHER)
        series = self._llm.get(key)
        if series is None:
            series = self._llm[key] = _LLMSeries(self, *key)
        return series

    def agent_turn(self, agent: str, steps: int) -> None:
        """One finished agent turn; `agent` must be the name of an existing agent."""
        label = agent if _NAME.match(agent) else OTHER
        self.agent_turns.labels(label).inc()
        if steps:
            self.agent_steps.labels(label).inc(steps)

    def tool_call(self, tool: str, outcome: str) -> None:
        """One MCP tool call; pass `OTHER` as `tool` for a name the server does not have."""
        label = tool if _NAME.match(tool) else OTHER
        seen = self._tool_outcomes.setdefault(label, set())
        if outcome not in seen:
            if not _OUTCOME.match(outcome) or len(seen) >= _MAX_OUTCOMES:
                outcome = OTHER
            seen.add(outcome)
        self.mcp_tool_calls.labels(label, outcome).inc()

    def key_label(self, key: str | None) -> str:
        label = key or "anonymous"
        if label in self._keys:
            return label
        if not _NAME.match(label) or len(self._keys) >= _MAX_KEYS:
            return OTHER
        self._keys.add(label)
        return label

    def fallback(self, group: str, from_target: str, to_target: str) -> None:
        self.fallbacks.labels(group, from_target, to_target).inc()

    def cooldown(self, group: str, target: str, cooling: bool) -> None:
        self.target_cooldown.labels(group, target).set(1.0 if cooling else 0.0)

    def budget_left(self, key: str, usd: float) -> None:
        self.key_budget_left.labels(self.key_label(key)).set(usd)

    def record_spend(self, key: str | None, stats: CallRecord, cost: float) -> None:
        """One upstream call's cost and tokens, charged to the caller's key."""
        label = self.key_label(key)
        if cost:
            series = self._llm.get((stats.provider, stats.model))
            if series is None:
                series = self._llm_series(stats.provider, stats.model)
            self.llm_cost.labels(*series.labels).inc(cost)
            self.key_cost.labels(label).inc(cost)
        if stats.prompt_tokens:
            self.key_tokens.labels(label, "prompt").inc(stats.prompt_tokens)
        if stats.completion_tokens:
            self.key_tokens.labels(label, "completion").inc(stats.completion_tokens)

    def mcp_upstream_call(self, server: str, outcome: str, seconds: float) -> None:
        """One proxied call; `server` comes from the config, `outcome` from a fixed set."""
        self.mcp_upstream_calls.labels(server, outcome).inc()
        self.mcp_upstream_duration.labels(server).observe(seconds)

    # -- exposition ----------------------------------------------------------------

    def exposition(self) -> bytes:
        """The Prometheus text format: this process's registry, or every worker's files."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    def close(self) -> None:
        """A worker that stops must drop out of the live-summed in-flight gauge."""
        if self.multiprocess_dir is not None:
            multiprocess.mark_process_dead(os.getpid(), self.multiprocess_dir)  # type: ignore[no-untyped-call]


def _multiprocess_dir() -> str | None:
    # prometheus_client chose file-backed values at import if the variable was set then;
    # only in that case do the files hold what the other workers counted.
    path = os.environ.get(ENV_VAR)
    if path and getattr(values.ValueClass, "_multiprocess", False):
        return path
    return None
