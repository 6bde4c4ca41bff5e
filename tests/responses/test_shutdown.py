"""A Responses stream open at shutdown ends with `response.failed` (`shutting_down`), and
the failed response is written to the store before the process exits."""

from __future__ import annotations

import signal
from pathlib import Path

import openai

from tests.fake_upstream import FakeUpstream
from tests.gateway_server import GatewayProcess
from tests.test_shutdown import EXIT_TIMEOUT, EXITED, GRACE, _slow_stream


def test_an_open_responses_stream_fails_with_shutting_down_and_is_stored(
    upstream: FakeUpstream, gateway_config: Path, tmp_path: Path
) -> None:
    env = {
        "OPENAI_API_KEY": "sk-upstream-secret",
        "OPENAI_BASE_URL": upstream.base_url,
        "GATEWAY_DATA_DIR": str(tmp_path / "data"),
        "GATEWAY_SHUTDOWN_GRACE": GRACE,
        "GATEWAY_LOG_LEVEL": "WARNING",
    }
    upstream.script(_slow_stream())
    first = GatewayProcess(env, "--config", str(gateway_config)).start(timeout=60)
    try:
        client = openai.OpenAI(base_url=first.base_url, api_key="unused", max_retries=0)
        with client.responses.stream(model="openai/gpt-4o-mini", input="hi") as stream:
            events = iter(stream)
            kinds = []
            for event in events:
                kinds.append(event.type)
                if event.type == "response.output_text.delta":
                    break
            assert first.proc is not None
            first.proc.send_signal(signal.SIGTERM)
            rest = list(events)
        assert rest[-1].type == "response.failed"
        failed = rest[-1].response
        assert failed.error is not None and failed.error.code == "shutting_down"  # type: ignore[comparison-overlap]
        assert first.proc.wait(timeout=EXIT_TIMEOUT) in EXITED
    finally:
        first.stop()
    with GatewayProcess(env, "--config", str(gateway_config)) as second:
        client = openai.OpenAI(base_url=second.base_url, api_key="unused", max_retries=0)
        stored = client.responses.retrieve(failed.id)
    assert stored.status == "failed" and stored.output_text == "first "
