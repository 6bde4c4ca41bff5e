"""One structured log line per request: its fields, its request id, and nothing secret."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import time

import httpx2
import openai
import pytest

from gateway.observability.logging import (
    ACCESS_LOGGER,
    AccessLog,
    JsonFormatter,
    TextFormatter,
    level_name,
)
from gateway.providers.base import CallRecord
from gateway.settings import ConfigError
from tests.fake_upstream import Reply
from tests.gateway_server import GatewayProcess, _clean_env
from tests.support.chunks import chunk

CHAT = "/v1/chat/completions"
SECRET_CONTENT = "the secret plan for tuesday"


def access_lines(output: str) -> list[dict]:
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [line for line in lines if line["logger"] == ACCESS_LOGGER]


def test_served_gateway_writes_one_json_line_per_request(gateway_env, gateway_config):
    env = {**gateway_env, "GATEWAY_API_KEYS": "gw-secret-key"}
    gw = GatewayProcess(env, "--config", str(gateway_config)).start()
    try:
        key = "gw-secret-key"
        with openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0) as client:
            messages = [{"role": "user", "content": SECRET_CONTENT}]
            raw = client.chat.completions.with_raw_response.create(
                model="openai/gpt-4o-mini",
                messages=messages,
                extra_headers={"X-Request-Id": "req-123"},
            )
            assert raw.headers["x-request-id"] == "req-123"
            generated = client.chat.completions.with_raw_response.create(
                model="openai/gpt-4o-mini", messages=messages, stream=True
            )
            list(generated.parse())
            generated_id = generated.headers["x-request-id"]
            assert re.fullmatch(r"[0-9a-f]{32}", generated_id)
            assert httpx2.post(gw.url + CHAT, json={}).status_code == 401
    finally:
        output = gw.stop()

    # uvicorn's own lines share the format: every line of the output is one JSON object.
    records = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert any(r["logger"].startswith("uvicorn") for r in records)
    assert not any(r["logger"] == "uvicorn.access" for r in records)  # ours replaces it
    # Start-up polled /healthz; those lines are there too.
    by_id = {
        line["request_id"]: line for line in access_lines(output) if line["route"] != "/healthz"
    }
    assert len(by_id) == 3
    assert by_id["req-123"] | {"ts": "-", "duration_ms": 0, "upstream_ms": 0} == {
        "ts": "-",
        "level": "info",
        "logger": ACCESS_LOGGER,
        "msg": "request",
        "request_id": "req-123",
        "method": "POST",
        "route": CHAT,
        "status": 200,
        "duration_ms": 0,
        "provider": "openai",
        "model": "gpt-4o-mini",
        "upstream_ms": 0,
        "prompt_tokens": 7,
        "completion_tokens": 3,
        "retries": 0,
        "outcome": "success",
    }
    assert by_id[generated_id]["ttft_ms"] >= 0
    rejected = next(line for line in by_id.values() if line["status"] == 401)
    assert rejected["route"] == CHAT and "provider" not in rejected
    for secret in ("gw-secret-key", "sk-upstream-secret", SECRET_CONTENT, "echo:", "Bearer"):
        assert secret not in output


def test_log_line_reports_retries_and_a_broken_stream(gateway, upstream, caplog, capsys):
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    messages = [{"role": "user", "content": "a"}]
    with openai.OpenAI(base_url=gateway.base_url, api_key="x", max_retries=0) as client:
        upstream.script(Reply.error(503), Reply.completion("fine"))
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=messages)
        upstream.script(Reply.sse([chunk("a"), chunk("b"), chunk("c")], cut_after=2))
        stream = client.chat.completions.create(
            model="openai/gpt-4o-mini", messages=messages, stream=True
        )
        with pytest.raises(openai.APIError):
            list(stream)

    # Lines are written in batches, at most a tenth of a second after their request.
    lines: list[dict] = []
    deadline = time.monotonic() + 10
    while len(lines) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
        lines += access_lines(capsys.readouterr().err)
    assert [(f["status"], f["retries"], f["outcome"]) for f in lines] == [
        (200, 1, "success"),
        (200, 0, "upstream_unavailable"),
    ]


def test_formatters_render_fields():
    record = logging.LogRecord(ACCESS_LOGGER, logging.INFO, "", 0, "request", None, None)
    record.fields = {
        "request_id": "r1",
        "route": "/v1/models/{handle}",
        "model": None,
        "note": "a b",
    }
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "r1" and line["level"] == "info" and line["msg"] == "request"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["ts"])
    text = TextFormatter().format(record)
    assert text.endswith(
        'INFO gateway.access request request_id=r1 route=/v1/models/{handle} model=- note="a b"'
    )


def test_access_lines_in_both_formats():
    stats = CallRecord("kimi", "kimi-k2", upstream_seconds=0.25, attempts=2, prompt_tokens=5)
    stats.first_token_seconds = 0.125
    args = (0.0, "r1", "POST", CHAT, 200, 0.5, [stats])
    line = json.loads(AccessLog("json").render(*args))
    assert line == {
        "ts": "1970-01-01T00:00:00.000Z", "level": "info", "logger": ACCESS_LOGGER,
        "msg": "request", "request_id": "r1", "method": "POST", "route": CHAT, "status": 200,
        "duration_ms": 500.0, "provider": "kimi", "model": "kimi-k2", "upstream_ms": 250.0,
        "prompt_tokens": 5, "completion_tokens": 0, "retries": 1, "outcome": "success",
        "ttft_ms": 125.0,
    }  # fmt: skip
    text = AccessLog("text").render(*args)
    assert text.startswith("1970-01-01T00:00:00.000Z INFO gateway.access request request_id=r1 ")
    assert " retries=1 outcome=success ttft_ms=125.0" in text
    # An agent turn's calls are summed; the first failure is the outcome.
    failed = CallRecord("kimi", "kimi-k2", attempts=1, prompt_tokens=3, outcome="upstream_timeout")
    turn = json.loads(AccessLog("json").render(0.0, "r2", "POST", CHAT, 200, 1.0, [stats, failed]))
    assert (turn["prompt_tokens"], turn["retries"], turn["outcome"], turn["calls"]) == (
        8,
        1,
        "upstream_timeout",
        2,
    )


def test_log_level_is_checked():
    assert level_name("WARN") == "warning" and level_name("Debug") == "debug"
    with pytest.raises(ConfigError, match="log_level"):
        level_name("loud")
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--port", "0"],
        env={**_clean_env(), "GATEWAY_LOG_LEVEL": "loud"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "log_level" in done.stderr
