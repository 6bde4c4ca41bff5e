"""Proves tests/fake_upstream.py with plain clients (openai SDK, aiohttp), no gateway involved."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam

sys.path.insert(0, str(Path(__file__).parent))
from fake_upstream import FakeUpstream, Reply, RequestRecord

USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello there"}]


_clients: list[OpenAI] = []


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as f:
        yield f
        while _clients:
            _clients.pop().close()


def client(fake: FakeUpstream, **kw: Any) -> OpenAI:
    """An SDK client without retries, closed when the test's fake stops."""
    kw.setdefault("api_key", "k")
    _clients.append(OpenAI(base_url=fake.base_url, max_retries=0, **kw))
    return _clients[-1]


def post(url: str, body: Any, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """One POST with plain aiohttp, from sync code."""

    async def go() -> tuple[int, dict[str, str], bytes]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as s:
            async with s.post(url, json=body) as r:
                return r.status, dict(r.headers), await r.read()

    return asyncio.run(go())


def test_base_url_and_lifecycle() -> None:
    before = set(threading.enumerate())
    fake = FakeUpstream()
    fake.start()
    assert fake.port > 0 and fake.base_url == f"http://127.0.0.1:{fake.port}/v1"
    fake.stop()
    fake.stop()  # idempotent
    # No thread of the fake's outlives it; threads of earlier tests may end meanwhile.
    assert set(threading.enumerate()) - before == set()


def test_default_json_echo_via_sdk(fake: FakeUpstream) -> None:
    r = client(fake).chat.completions.create(model="m-1", messages=USER)
    assert r.object == "chat.completion" and r.model == "m-1"
    assert r.choices[0].message.content == "echo: hello there"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (7, 3, 10)


def test_echo_of_list_content(fake: FakeUpstream) -> None:
    content = [
        {"type": "text", "text": "a"},
        {"type": "image_url", "image_url": {"url": "x"}},
        {"type": "text", "text": "b"},
    ]
    msgs = [
        {"role": "user", "content": "old"},
        {"role": "assistant", "content": "x"},
        {"role": "user", "content": content},
    ]
    r = client(fake).chat.completions.create(model="m", messages=msgs)  # type: ignore[arg-type]
    assert r.choices[0].message.content == "echo: a b"


def test_default_stream_via_sdk_with_usage(fake: FakeUpstream) -> None:
    stream = client(fake).chat.completions.create(
        model="m-2", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" and c.model == "m-2" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content for c in chunks[1:-2]]
    assert len(pieces) == 3 and "".join(p or "" for p in pieces) == "echo: hello there"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 10


def test_raw_stream_wire_format(fake: FakeUpstream) -> None:
    status, headers, body = post(
        fake.base_url + "/chat/completions", {"model": "m", "messages": USER, "stream": True}
    )
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    events = body.decode().split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    first = json.loads(events[0].removeprefix("data: "))
    assert set(first) == {"id", "object", "created", "model", "choices"}  # no usage chunk asked
    assert first["choices"][0]["finish_reason"] is None
    last = json.loads(events[-3].removeprefix("data: "))
    assert last["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }


def test_scripted_error_with_retry_after(fake: FakeUpstream) -> None:
    fake.script(Reply.error(429, "slow down", code="rate_limit_exceeded", retry_after=3))
    with pytest.raises(openai.RateLimitError) as info:
        client(fake).chat.completions.create(model="m", messages=USER)
    assert info.value.response.headers["retry-after"] == "3"
    assert info.value.code == "rate_limit_exceeded" and "slow down" in info.value.message
    # the queue is consumed: the default behaviour resumes
    r = client(fake).chat.completions.create(model="m", messages=USER)
    assert r.choices[0].message.content == "echo: hello there"
    assert fake.pending == 0


def test_scripted_replies_in_order(fake: FakeUpstream) -> None:
    fake.script(Reply.completion("one"), Reply.json({"custom": True}, status=201), Reply.error(500))
    c = client(fake)
    r = c.chat.completions.create(model="m", messages=USER)
    assert r.choices[0].message.content == "one"
    status, _, body = post(fake.base_url + "/chat/completions", {"messages": USER})
    assert (status, json.loads(body)) == (201, {"custom": True})
    with pytest.raises(openai.InternalServerError):
        c.chat.completions.create(model="m", messages=USER)


def test_cut_stream_breaks_the_sdk_iteration(fake: FakeUpstream) -> None:
    chunk = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": "par"}, "finish_reason": None}],
    }
    fake.script(Reply.sse([chunk, chunk, chunk], cut_after=2))
    stream = client(fake).chat.completions.create(model="m", messages=USER, stream=True)
    got = []
    with pytest.raises(Exception) as info, stream:  # the transport error type is the SDK's
        for c in stream:
            got.append(c.choices[0].delta.content)
    assert got == ["par", "par"]
    assert not isinstance(info.value, AssertionError)


def test_sse_verbatim_and_no_done(fake: FakeUpstream) -> None:
    fake.script(Reply.sse([": keep-alive\n\n", {"x": 1}], done=False, delay=0.05))
    status, _, body = post(fake.base_url + "/chat/completions", {})
    assert status == 200 and body == b': keep-alive\n\ndata: {"x":1}\n\n'


def test_empty_reply(fake: FakeUpstream) -> None:
    fake.script(Reply.empty())
    status, headers, body = post(fake.base_url + "/chat/completions", {"messages": USER})
    assert (status, body, headers["Content-Length"]) == (200, b"", "0")


def test_drop_and_delay(fake: FakeUpstream) -> None:
    fake.script(Reply.drop(), Reply.drop(), Reply.delay(2, Reply.completion("late")))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        post(fake.base_url + "/chat/completions", {"messages": USER})
    with pytest.raises(openai.APIConnectionError):
        client(fake).chat.completions.create(model="m", messages=USER)
    t0 = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client(fake, timeout=0.3).chat.completions.create(model="m", messages=USER)
    assert time.monotonic() - t0 < 1.5


def test_tool_calls_streamed_and_reassembled(fake: FakeUpstream) -> None:
    calls = [
        {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}},
        {
            "id": "call_2",
            "type": "function",
            "function": {"name": "core_memory_append", "arguments": '{"label":"human"}'},
        },
    ]
    fake.script(Reply.completion(tool_calls=calls), Reply.completion(tool_calls=calls))
    c = client(fake)
    plain = c.chat.completions.create(model="m", messages=USER)
    assert plain.choices[0].finish_reason == "tool_calls"
    assert plain.choices[0].message.tool_calls is not None
    assert [t.function.name for t in plain.choices[0].message.tool_calls] == [  # type: ignore[union-attr]
        "get_weather",
        "core_memory_append",
    ]

    acc: dict[int, dict[str, str]] = {}
    finish = None
    arg_deltas = 0
    for chunk in c.chat.completions.create(model="m", messages=USER, stream=True):
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for d in choice.delta.tool_calls or []:
            slot = acc.setdefault(d.index, {"id": "", "name": "", "arguments": ""})
            slot["id"] += d.id or ""
            if d.function is not None:
                slot["name"] += d.function.name or ""
                slot["arguments"] += d.function.arguments or ""
                arg_deltas += bool(d.function.arguments)
    assert finish == "tool_calls" and arg_deltas >= 4
    assert json.loads(acc[0]["arguments"]) == {"city": "Paris", "unit": "celsius"}
    assert acc[0]["name"] == "get_weather" and acc[0]["id"].startswith("call_")
    assert acc[1] == {
        "id": "call_2",
        "name": "core_memory_append",
        "arguments": '{"label":"human"}',
    }


def test_reasoning_content_and_custom_usage(fake: FakeUpstream) -> None:
    fake.script(
        Reply.completion(
            "ok",
            reasoning_content="thinking",
            usage={"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
        )
    )
    _, _, body = post(fake.base_url + "/chat/completions", {"model": "k", "messages": USER})
    data = json.loads(body)
    assert data["choices"][0]["message"]["reasoning_content"] == "thinking"
    assert data["usage"]["total_tokens"] == 3


def test_callable_reply_sees_the_request(fake: FakeUpstream) -> None:
    def turn(rec: RequestRecord) -> Reply:
        return Reply.completion(f"{len(rec.json['messages'])} messages")

    fake.script(turn, lambda rec: None)  # None falls back to the default echo
    c = client(fake)
    r1 = c.chat.completions.create(model="m", messages=USER * 2)
    r2 = c.chat.completions.create(model="m", messages=USER)
    assert r1.choices[0].message.content == "2 messages"
    assert r2.choices[0].message.content == "echo: hello there"


def test_models_default_settable_and_scripted(fake: FakeUpstream) -> None:
    c = client(fake)
    assert [m.id for m in c.models.list()] == ["fake-model"]
    fake.models = ["kimi-k2-0905-preview", "moonshot-v1-8k"]
    page = c.models.list()
    assert [m.id for m in page] == ["kimi-k2-0905-preview", "moonshot-v1-8k"]
    assert page.data[0].owned_by == "fake" and page.data[0].created == 0
    fake.script_models(Reply.error(503, "down"))
    with pytest.raises(openai.InternalServerError):
        c.models.list()
    assert len(c.models.list().data) == 2
    assert len(fake.models_requests) == 4


def test_request_recording_and_reset(fake: FakeUpstream) -> None:
    c = client(fake, api_key="sk-secret", default_headers={"X-Trace": "t1"})
    c.chat.completions.create(model="m", messages=USER, temperature=0.5)
    c.models.list()
    status, _, _ = post(fake.base_url + "/nope", {"a": 1})
    assert status == 404
    reqs = fake.requests
    assert [(r.method, r.path) for r in reqs] == [
        ("POST", "/v1/chat/completions"),
        ("GET", "/v1/models"),
        ("POST", "/v1/nope"),
    ]
    chat = fake.chat_requests
    assert len(chat) == 1
    rec = chat[0]
    assert rec.json == {"model": "m", "messages": USER, "temperature": 0.5}
    assert json.loads(rec.raw) == rec.json
    assert rec.headers["Authorization"] == "Bearer sk-secret"
    assert rec.headers["authorization"] == "Bearer sk-secret"
    assert "x-trace" in rec.headers and rec.headers.get("X-TRACE") == "t1"
    assert reqs[1].json is None and reqs[1].raw == b""
    fake.script(Reply.drop())
    fake.reset()
    assert fake.requests == [] and fake.pending == 0


def test_works_inside_a_running_event_loop() -> None:
    async def main() -> str:
        with FakeUpstream() as fake:
            async with aiohttp.ClientSession() as s:
                body = {"model": "m", "messages": USER}
                async with s.post(fake.base_url + "/chat/completions", json=body) as r:
                    data = await r.json()
        return str(data["choices"][0]["message"]["content"])

    assert asyncio.run(main()) == "echo: hello there"


def test_stop_with_a_request_in_flight() -> None:
    fake = FakeUpstream().start()
    fake.script(Reply.delay(30, Reply.completion("never")))
    errors: list[BaseException] = []

    def call() -> None:
        try:
            post(fake.base_url + "/chat/completions", {"messages": USER}, timeout=10)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=call)
    t.start()
    deadline = time.monotonic() + 5
    while not fake.chat_requests and time.monotonic() < deadline:
        time.sleep(0.01)
    t0 = time.monotonic()
    fake.stop()
    assert time.monotonic() - t0 < 3
    t.join(5)
    assert len(errors) == 1 and isinstance(errors[0], aiohttp.ClientError)
