"""Streamed agent turns: OpenAI's chunk shapes, usage, failures and clients that leave."""

from __future__ import annotations

import time
from typing import Any

import httpx2
import openai
import pytest

from tests.agents.conftest import create, history
from tests.fake_upstream import FakeUpstream, Reply
from tests.support.chunks import chunk

PIECES = ["The ", "answer ", "is ", "forty-", "two."]


def slow_stream(delay: float = 0.0, cut_after: int | None = None) -> Reply:
    events: list[Any] = [chunk(delta={"role": "assistant", "content": ""})]
    events += [chunk(p) for p in PIECES]
    usage = {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}
    events += [chunk(None, "stop"), chunk(choices=[], usage=usage)]
    return Reply.sse(events, delay=delay, cut_after=cut_after)


def stream(sdk: openai.OpenAI, text: str, **kw: Any) -> Any:
    return sdk.chat.completions.create(
        model="agent/ada", messages=[{"role": "user", "content": text}], stream=True, **kw
    )


def test_stream_carries_the_reply_and_the_summed_usage(
    rest: httpx2.Client, sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    create(rest)
    upstream.script(
        Reply.completion(
            tool_calls=[{"name": "conversation_search", "arguments": {"query": "answer"}}],
            usage={"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
        ),
        slow_stream(),
    )
    chunks = list(stream(sdk, "what is the answer?", stream_options={"include_usage": True}))

    content = [c.choices[0].delta.content for c in chunks if c.choices]
    assert "".join(x or "" for x in content) == "".join(PIECES)
    assert len([x for x in content if x]) == len(PIECES)  # token by token, not one block
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert len({c.id for c in chunks}) == 1
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (20, 7)
    assert all(upstream_request.json["stream"] for upstream_request in upstream.chat_requests)
    assert history(rest, "ada")[-1]["content"] == "".join(PIECES)


def test_stream_without_include_usage_has_no_usage_chunk(
    rest: httpx2.Client, sdk: openai.OpenAI
) -> None:
    create(rest)
    chunks = list(stream(sdk, "hi"))
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)


def test_client_disconnect_mid_stream_still_completes_and_stores_the_turn(
    rest: httpx2.Client, upstream: FakeUpstream
) -> None:
    create(rest)
    upstream.script(slow_stream(delay=0.05))
    body = {
        "model": "agent/ada",
        "stream": True,
        "messages": [{"role": "user", "content": "tell me slowly"}],
    }
    with rest.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if '"content":"The "' in line:
                break  # leave after the first token
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        stored = history(rest, "ada")
        if len(stored) == 2:
            break
        time.sleep(0.05)
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert stored[1]["content"] == "".join(PIECES)


def test_failure_after_the_first_token_ends_the_stream_with_an_error_event(
    rest: httpx2.Client, sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    create(rest)
    upstream.script(slow_stream(cut_after=3))
    received: list[str] = []
    with pytest.raises(openai.APIError) as failure:
        for c in stream(sdk, "go on"):
            received.append(c.choices[0].delta.content or "")
    assert "".join(received) == "The answer "
    assert "closed the stream" in failure.value.message
    # No half step is stored; the same input again resumes the turn.
    assert [m["role"] for m in history(rest, "ada")] == ["user"]
    upstream.script(slow_stream())
    assert "".join(c.choices[0].delta.content or "" for c in stream(sdk, "go on")) == (
        "".join(PIECES)
    )
    assert [m["role"] for m in history(rest, "ada")] == ["user", "assistant"]


def test_failure_before_any_token_is_a_plain_http_error(
    rest: httpx2.Client, sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    create(rest)
    upstream.script(*[Reply.error(429, retry_after=0)] * 3)
    with pytest.raises(openai.RateLimitError) as failure:
        list(stream(sdk, "hello"))
    assert failure.value.body["code"] == "upstream_rate_limited"  # type: ignore[index]


def test_an_upstream_error_mid_stream_keeps_the_upstreams_code(
    rest: httpx2.Client, sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    create(rest)
    error = {
        "error": {"message": "overloaded", "type": "server_error", "code": "engine_overloaded"}
    }
    upstream.script(
        Reply.sse([chunk({"role": "assistant", "content": ""}), chunk({"content": "The "}), error])
    )
    with pytest.raises(openai.APIError) as failure:
        for _ in stream(sdk, "hello"):
            pass
    assert failure.value.code == "engine_overloaded"
    # Before any text too, once retries are spent.
    upstream.script(*[Reply.sse([error])] * 3)
    with pytest.raises(openai.APIError) as before:
        list(stream(sdk, "hello"))
    assert before.value.code == "engine_overloaded"
