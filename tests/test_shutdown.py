"""Graceful shutdown of a real `gateway serve` process (SIGTERM mid-stream).

Streams still open at the end of `GATEWAY_SHUTDOWN_GRACE` end with an error frame
(code `shutting_down`), the process exits, and an agent turn it interrupted is left
failed (not `running`) and resumes when its input is sent again.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx2
import openai
import pytest
from starlette.types import Message

from gateway import errors
from gateway.app import create_app
from gateway.lifecycle import Drain
from gateway.services import Services
from gateway.settings import Settings
from tests.agents.conftest import create, history
from tests.fake_upstream import FakeUpstream, Reply
from tests.gateway_server import GatewayProcess

# Generous: the test asserts that the process exits, not how fast.
EXIT_TIMEOUT = 90
GRACE = "1"
# uvicorn re-raises the signal once it has shut down, so "killed by SIGTERM" is normal.
EXITED = (0, -signal.SIGTERM)


def _chunk(text: str) -> dict[str, object]:
    return {
        "id": "chatcmpl-slow",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }


def _slow_stream() -> Reply:
    # One chunk now, the rest long after any grace this test uses.
    return Reply.sse([_chunk("first "), _chunk("never")], delay=600)


@pytest.fixture
def process_env(upstream: FakeUpstream, tmp_path: Path) -> dict[str, str]:
    return {
        "OPENAI_API_KEY": "sk-upstream-secret",
        "OPENAI_BASE_URL": upstream.base_url,
        "GATEWAY_DATA_DIR": str(tmp_path / "data"),
        "GATEWAY_SHUTDOWN_GRACE": GRACE,
        "GATEWAY_LOG_LEVEL": "WARNING",
    }


@pytest.fixture
def process(process_env: dict[str, str], gateway_config: Path) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(process_env, "--config", str(gateway_config)).start(timeout=60)
    try:
        yield gw
    finally:
        gw.stop()


def _events(lines: Iterator[str]) -> Iterator[str]:
    for line in lines:
        if line.startswith("data: "):
            yield line[len("data: ") :]


def _sigterm_and_wait(gw: GatewayProcess) -> int:
    assert gw.proc is not None
    gw.proc.send_signal(signal.SIGTERM)
    return gw.proc.wait(timeout=EXIT_TIMEOUT)


def test_an_open_chat_stream_ends_with_a_shutting_down_frame(
    process: GatewayProcess, upstream: FakeUpstream
) -> None:
    upstream.script(_slow_stream())
    body = {
        "model": "openai/gpt-4o-mini",
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    with (
        httpx2.Client(base_url=process.url, timeout=EXIT_TIMEOUT) as client,
        client.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        events = _events(response.iter_lines())
        assert json.loads(next(events))["choices"][0]["delta"]["content"] == "first "
        assert process.proc is not None
        process.proc.send_signal(signal.SIGTERM)
        rest = list(events)
    assert len(rest) == 1, rest
    error = json.loads(rest[0])["error"]
    assert error["code"] == "shutting_down"
    assert error["type"] == "server_error"
    assert process.proc.wait(timeout=EXIT_TIMEOUT) in EXITED


def test_the_openai_sdk_sees_the_shutdown_as_an_api_error(
    process: GatewayProcess, upstream: FakeUpstream
) -> None:
    upstream.script(_slow_stream())
    client = openai.OpenAI(base_url=process.base_url, api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    first = next(iter(stream))
    assert first.choices[0].delta.content == "first "
    assert process.proc is not None
    process.proc.send_signal(signal.SIGTERM)
    with pytest.raises(openai.APIError) as caught:
        for _ in stream:
            pass
    assert "shutting down" in caught.value.message
    assert process.proc.wait(timeout=EXIT_TIMEOUT) in EXITED


def test_an_open_messages_stream_ends_with_an_anthropic_error_event(
    process: GatewayProcess, upstream: FakeUpstream
) -> None:
    """`/v1/messages` ends its stream the Anthropic way: `event: error`."""
    upstream.script(_slow_stream())
    client = anthropic.Anthropic(base_url=process.url, api_key="unused", max_retries=0)
    try:
        with client.messages.stream(
            model="openai/gpt-4o-mini",
            max_tokens=64,
            messages=[{"role": "user", "content": "hi"}],
        ) as stream:
            events = iter(stream)
            kinds = []
            while "content_block_delta" not in kinds:
                kinds.append(next(events).type)
            assert process.proc is not None
            process.proc.send_signal(signal.SIGTERM)
            with pytest.raises(anthropic.APIStatusError) as caught:
                for _ in events:
                    pass
    finally:
        client.close()
    assert "shutting down" in str(caught.value)
    assert process.proc.wait(timeout=EXIT_TIMEOUT) in EXITED


def test_an_interrupted_agent_turn_is_failed_and_resumes(
    process_env: dict[str, str],
    gateway_config: Path,
    upstream: FakeUpstream,
    tmp_path: Path,
) -> None:
    gw = GatewayProcess(process_env, "--config", str(gateway_config)).start(timeout=60)
    try:
        with httpx2.Client(base_url=gw.url, timeout=EXIT_TIMEOUT) as client:
            create(client)
            upstream.script(_slow_stream())
            body = {
                "model": "agent/ada",
                "stream": True,
                "messages": [{"role": "user", "content": "a long question"}],
            }
            headers = {"Idempotency-Key": "turn-1"}
            with client.stream(
                "POST", "/v1/chat/completions", json=body, headers=headers
            ) as response:
                assert response.status_code == 200
                events = _events(response.iter_lines())
                deltas = [json.loads(next(events))["choices"][0]["delta"] for _ in range(2)]
                assert deltas[1]["content"] == "first "
                assert _sigterm_and_wait(gw) in EXITED
                rest = list(events)
        assert [json.loads(e)["error"]["code"] for e in rest] == ["shutting_down"]
    finally:
        gw.stop()

    # Not left `running`: the turn was marked failed as the process stopped.
    db = sqlite3.connect(tmp_path / "data" / "gateway.db")
    try:
        statuses = [row[0] for row in db.execute("SELECT status FROM turns")]
    finally:
        db.close()
    assert statuses == ["failed"]

    # The same request resumes the turn: one user message, one answer.
    upstream.script(Reply.completion("the answer"))
    again = GatewayProcess(process_env, "--config", str(gateway_config)).start(timeout=60)
    try:
        with httpx2.Client(base_url=again.url, timeout=60) as client:
            response = client.post(
                "/v1/chat/completions", json={**body, "stream": False}, headers=headers
            )
            assert response.status_code == 200, response.text
            assert response.json()["choices"][0]["message"]["content"] == "the answer"
            stored = history(client, "ada")
    finally:
        again.stop()
    assert [(m["role"], m["content"]) for m in stored] == [
        ("user", "a long question"),
        ("assistant", "the answer"),
    ]


def test_new_requests_are_refused_while_draining(gateway_env: dict[str, str]) -> None:
    async def run() -> list[Message]:
        settings = Settings()
        services = Services(settings, environ=gateway_env)
        app = create_app(settings, services)
        services.drain.begin()
        sent: list[Message] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": "GET",
            "path": "/v1/models",
            "headers": [],
            "query_string": b"",
        }
        await app(scope, receive, send)
        return sent

    start, body = asyncio.run(run())
    assert start["status"] == 503
    headers = dict(start["headers"])
    assert headers[b"retry-after"] == b"1"
    assert headers[b"connection"] == b"close"
    assert json.loads(body["body"])["error"]["code"] == "shutting_down"


def test_the_deadline_raises_shutting_down_inside_its_block() -> None:
    async def run() -> tuple[bool, bool]:
        drain = Drain(grace=0.05)
        outside = asyncio.Event()
        reached = False

        async def work() -> None:
            nonlocal reached
            async with drain.deadline():
                await asyncio.Event().wait()  # a stream that never ends
            reached = True

        task = asyncio.create_task(work())
        await asyncio.sleep(0)
        drain.begin()
        with pytest.raises(errors.ShuttingDown):
            await task
        # A scope opened after the deadline fails at once; one before draining waits.
        with pytest.raises(errors.ShuttingDown):
            async with drain.deadline():
                await asyncio.sleep(1)
        outside.set()
        return reached, drain.expired

    reached, expired = asyncio.run(run())
    assert not reached
    assert expired


def test_the_deadline_leaves_other_cancellations_and_finished_work_alone() -> None:
    async def run() -> None:
        drain = Drain(grace=0.05)

        async def wait_forever() -> None:
            async with drain.deadline():
                await asyncio.Event().wait()

        # Cancelled by someone else (a client that left): still a plain cancellation.
        task = asyncio.create_task(wait_forever())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Work that ends within the grace ends normally, and leaves no timer behind.
        async with drain.deadline():
            drain.begin()
            await asyncio.sleep(0.01)
        assert not drain._scopes
        await asyncio.sleep(0.1)  # past the deadline: nothing fires on the finished task

    asyncio.run(run())
