"""Optional OpenTelemetry tracing: one span per request, one per upstream attempt.

Tracing is on when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_TRACES_ENDPOINT`) is set and
the `otel` extra is installed; spans then go out over OTLP/HTTP in batches. When it
is off, `from_environ` returns None and nothing here imports opentelemetry, so the
request path pays one `is None` check.

Attempt spans are made after the fact, from the start time the provider client
hands to `on_attempt`, so the client needs no tracing code of its own. They carry the
GenAI semantic-convention attributes (`gen_ai.request.model`, `gen_ai.usage.*`, …).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.types import Scope

from gateway.providers.base import CallRecord

log = logging.getLogger("gateway.tracing")

SERVICE_NAME = "agent-gateway"
_PROPAGATED = (b"traceparent", b"tracestate", b"baggage")


def traces_endpoint(environ: Mapping[str, str]) -> str | None:
    """Where spans go: the traces endpoint as given, or `<base>/v1/traces`."""
    explicit = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if explicit:
        return explicit
    base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    return base.rstrip("/") + "/v1/traces" if base else None


def from_environ(environ: Mapping[str, str]) -> Tracing | None:
    """A `Tracing` exporting over OTLP when the environment asks for it, else None."""
    endpoint = traces_endpoint(environ)
    if endpoint is None or environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed; "
            "install agent-gateway[otel] to export traces"
        )
        return None
    # OTEL_SERVICE_NAME, when set, names the service; Resource.create reads it.
    attributes = {} if environ.get("OTEL_SERVICE_NAME") else {"service.name": SERVICE_NAME}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return Tracing(provider)


class Tracing:
    """Spans on one tracer provider (ours, not the process-global one)."""

    def __init__(self, provider: Any) -> None:
        from opentelemetry import context, propagate, trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        self.provider = provider
        self._tracer = provider.get_tracer(SERVICE_NAME)
        self._context = context
        self._propagate = propagate
        self._trace = trace
        self._server = SpanKind.SERVER
        self._client = SpanKind.CLIENT
        self._error = Status(StatusCode.ERROR)

    def start_request(self, scope: Scope) -> tuple[Any, Any]:
        """Open the request's span, continuing the caller's trace, and make it current."""
        carrier = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope["headers"]
            if k in _PROPAGATED
        }
        parent = self._propagate.extract(carrier) if carrier else None
        method = scope["method"]
        span = self._tracer.start_span(
            method,
            context=parent,
            kind=self._server,
            attributes={"http.request.method": method, "url.path": scope["path"]},
        )
        token = self._context.attach(self._trace.set_span_in_context(span))
        return span, token

    def end_request(
        self,
        started: tuple[Any, Any],
        request_id: str | None,
        method: str,
        route: str,
        status: int,
        calls: Sequence[CallRecord],
    ) -> None:
        span, token = started
        try:
            span.update_name(f"{method} {route}")
            span.set_attribute("http.route", route)
            span.set_attribute("http.response.status_code", status)
            if request_id:
                span.set_attribute("gateway.request_id", request_id)
            if calls:
                _set_call_attributes(span, calls)
            if status >= 500:
                span.set_attribute("error.type", str(status))
                span.set_status(self._error)
            span.end()
        finally:
            self._context.detach(token)

    def on_attempt(self, stats: CallRecord, started: float, error: str | None) -> None:
        """The provider client's hook: one upstream attempt that began at `started`."""
        end_ns = time.time_ns()
        start_ns = end_ns - int((time.perf_counter() - started) * 1e9)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": stats.provider,
            "gen_ai.system": stats.provider,
            "gen_ai.request.model": stats.model,
            "gateway.attempt": stats.attempts,
        }
        if error is None:
            attributes["gen_ai.usage.input_tokens"] = stats.prompt_tokens
            attributes["gen_ai.usage.output_tokens"] = stats.completion_tokens
            if stats.first_token_seconds is not None:
                attributes["gateway.time_to_first_token"] = stats.first_token_seconds
        else:
            attributes["error.type"] = error
        span = self._tracer.start_span(
            f"chat {stats.model}", kind=self._client, start_time=start_ns, attributes=attributes
        )
        if error is not None:
            span.set_status(self._error)
        span.end(end_time=end_ns)

    def shutdown(self) -> None:
        """Send what is still batched; called once at gateway shutdown."""
        self.provider.shutdown()


def _set_call_attributes(span: Any, calls: Sequence[CallRecord]) -> None:
    last = calls[-1]
    span.set_attribute("gen_ai.provider.name", last.provider)
    span.set_attribute("gen_ai.request.model", last.model)
    span.set_attribute("gen_ai.usage.input_tokens", sum(c.prompt_tokens for c in calls))
    span.set_attribute("gen_ai.usage.output_tokens", sum(c.completion_tokens for c in calls))
    span.set_attribute("gateway.retries", sum(c.retries for c in calls))
    failed = next((c.outcome for c in calls if c.outcome != "success"), None)
    span.set_attribute("gateway.outcome", failed or "success")
