"""OpenTelemetry tracing: spans per request and per upstream attempt, OTLP export, off = free.

The span tests need the `otel` extra and skip without it; the zero-cost test always runs.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai
import pytest

from gateway.observability import tracing
from tests.fake_upstream import Reply
from tests.gateway_server import GatewayServer

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def otel() -> Any:
    pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


@pytest.fixture
def traced(gateway_env, gateway_config) -> Iterator[tuple[Any, openai.OpenAI]]:
    provider, exporter = otel()
    server = GatewayServer(gateway_env, gateway_config, tracing=tracing.Tracing(provider))
    with server, openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0) as client:
        yield exporter, client


def _spans_once_request_ends(exporter):
    """The finished spans once the request's own has ended: the client may read the
    last byte before the server's middleware has closed the request span."""
    deadline = time.monotonic() + 10
    while True:
        spans = exporter.get_finished_spans()
        if any(s.name == "POST /v1/chat/completions" for s in spans):
            return spans
        assert time.monotonic() < deadline, "the request span never ended"
        time.sleep(0.01)


def test_spans_for_request_and_each_attempt(traced, upstream):
    exporter, client = traced
    upstream.script(Reply.error(429, retry_after=0))
    client.chat.completions.create(
        model="openai/gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"traceparent": TRACEPARENT, "x-request-id": "trace-me"},
    )
    spans = _spans_once_request_ends(exporter)
    request = next(s for s in spans if s.name == "POST /v1/chat/completions")
    attempts = sorted(
        (s for s in spans if s.name == "chat gpt-4o-mini"), key=lambda s: s.start_time
    )

    # The caller's trace continues; both attempts hang under the request's span.
    assert format(request.context.trace_id, "032x") == TRACEPARENT.split("-")[1]
    assert [a.parent.span_id for a in attempts] == [request.context.span_id] * 2
    assert request.attributes["http.route"] == "/v1/chat/completions"
    assert request.attributes["http.response.status_code"] == 200
    assert request.attributes["gateway.request_id"] == "trace-me"
    assert request.attributes["gen_ai.usage.input_tokens"] == 7
    assert request.attributes["gateway.retries"] == 1
    failed, answered = attempts
    assert failed.attributes["error.type"] == "upstream_rate_limited"
    assert answered.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert answered.attributes["gen_ai.provider.name"] == "openai"
    assert answered.attributes["gen_ai.operation.name"] == "chat"
    assert answered.attributes["gen_ai.usage.input_tokens"] == 7
    assert answered.attributes["gen_ai.usage.output_tokens"] == 3
    assert failed.end_time <= answered.start_time and answered.end_time <= request.end_time


def test_stream_attempt_span_ends_with_the_stream(traced, upstream):
    exporter, client = traced
    stream = client.chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    list(stream)
    spans = _spans_once_request_ends(exporter)
    attempt = next(s for s in spans if s.name == "chat gpt-4o-mini")
    request = next(s for s in spans if s.name == "POST /v1/chat/completions")
    assert attempt.parent.span_id == request.context.span_id
    assert attempt.attributes["gen_ai.usage.output_tokens"] == 3
    assert "gateway.time_to_first_token" in attempt.attributes


class _Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_spans_are_exported_over_otlp_when_the_endpoint_is_set(gateway_env, gateway_config):
    otel()
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    collector = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    _Collector.received = []
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{collector.server_address[1]}"
    try:
        env = {**gateway_env, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}
        with GatewayServer(env, gateway_config) as server:
            assert server.services.tracing is not None
            with openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0) as client:
                client.chat.completions.create(
                    model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
                )
        # Shutting down flushed the batch.
    finally:
        collector.shutdown()
        collector.server_close()
    names = set()
    for path, body in _Collector.received:
        assert path == "/v1/traces"
        export = ExportTraceServiceRequest.FromString(body)
        for resource in export.resource_spans:
            service = {a.key: a.value.string_value for a in resource.resource.attributes}
            assert service["service.name"] == "agent-gateway"
            names |= {s.name for scope in resource.scope_spans for s in scope.spans}
    assert {"POST /v1/chat/completions", "chat gpt-4o-mini"} <= names


def test_tracing_is_off_and_unimported_without_an_endpoint():
    assert tracing.traces_endpoint({}) is None
    assert tracing.traces_endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}) == (
        "http://c:4318/v1/traces"
    )
    assert (
        tracing.from_environ({"OTEL_EXPORTER_OTLP_ENDPOINT": "x", "OTEL_SDK_DISABLED": "true"})
        is None
    )
    probe = (
        "import sys\n"
        "from gateway.app import create_app\n"
        "from gateway.services import Services\n"
        "from gateway.settings import Settings\n"
        "services = Services(Settings(), environ={})\n"
        "create_app(services.settings, services)\n"
        "assert services.tracing is None\n"
        # The mcp SDK brings opentelemetry's API along; the SDK and exporter are ours to load.
        "ours = ('opentelemetry.sdk', 'opentelemetry.exporter')\n"
        "loaded = [m for m, mod in sys.modules.items() if mod and m.startswith(ours)]\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
