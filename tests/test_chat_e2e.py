"""End to end: the official openai SDK → real uvicorn gateway → fake upstream over HTTP."""

from __future__ import annotations

import asyncio

import httpx2
import openai
import pytest

from tests.fake_upstream import Reply
from tests.support.chunks import chunk, frames

MODEL = "openai/gpt-4o-mini"
HELLO = [{"role": "user", "content": "hello"}]


def client(gateway, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key="gw-key", max_retries=0, **kw)


# -- happy paths -----------------------------------------------------------------


def test_sync_completion_reaches_upstream_with_provider_model_id(gateway, upstream):
    reply = client(gateway).chat.completions.create(model=MODEL, messages=HELLO)
    assert reply.choices[0].message.content == "echo: hello"
    assert reply.usage is not None and reply.usage.total_tokens == 10
    sent = upstream.chat_requests[0]
    assert sent.json["model"] == "gpt-4o-mini"
    assert sent.headers["authorization"] == "Bearer sk-upstream-secret"


async def test_async_client_concurrent_requests(gateway, upstream):
    aclient = openai.AsyncOpenAI(base_url=gateway.base_url, api_key="k", max_retries=0)
    async with aclient:
        replies = await asyncio.gather(
            *(
                aclient.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": f"n{i}"}]
                )
                for i in range(20)
            )
        )
    assert sorted(r.choices[0].message.content for r in replies) == sorted(
        f"echo: n{i}" for i in range(20)
    )


def test_stream_relayed_and_injected_usage_chunk_dropped(gateway, upstream):
    stream = client(gateway).chat.completions.create(model=MODEL, messages=HELLO, stream=True)
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: hello"
    # We asked upstream for usage (for metrics); the client did not, so it gets none.
    assert upstream.chat_requests[0].json["stream_options"] == {"include_usage": True}
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)


def test_stream_carries_no_usage_field_the_client_did_not_ask_for(gateway, upstream):
    body = {"model": MODEL, "messages": HELLO, "stream": True}
    raw = httpx2.post(gateway.base_url + "/chat/completions", json=body).text
    # The upstream put `"usage": null` in every chunk, as OpenAI does once asked.
    assert upstream.chat_requests[0].json["stream_options"] == {"include_usage": True}
    chunks = [c for c in frames(raw) if c != "[DONE]"]
    assert len(chunks) > 2 and all("usage" not in c for c in chunks)
    assert frames(raw)[-1] == "[DONE]"


def test_stream_usage_passed_on_when_client_asks(gateway, upstream):
    stream = client(gateway).chat.completions.create(
        model=MODEL, messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 10


async def test_stream_chunks_arrive_before_upstream_finishes(gateway, upstream):
    upstream.script(Reply.sse([chunk("a"), chunk("b"), chunk(None, "stop")], delay=0.5))
    async with httpx2.AsyncClient(timeout=10) as http:
        body = {"model": MODEL, "messages": HELLO, "stream": True}
        async with http.stream("POST", gateway.base_url + "/chat/completions", json=body) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            loop = asyncio.get_running_loop()
            start = loop.time()
            first_at = None
            async for line in r.aiter_lines():
                if line.startswith("data:") and first_at is None:
                    first_at = loop.time() - start
            total = loop.time() - start
    # The first event is relayed while the upstream is still pausing between events.
    assert first_at is not None and first_at < total - 0.5


def test_forwarding_keeps_unknown_fields_tools_and_format(gateway, upstream):
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    client(gateway).chat.completions.create(
        model=MODEL,
        messages=HELLO,
        tools=tools,
        tool_choice="auto",
        response_format={"type": "json_object"},
        temperature=1.7,
        extra_body={"vendor_knob": {"x": [1, 2]}, "seed": 7},
    )
    sent = upstream.chat_requests[0].json
    assert sent["tools"] == tools
    assert sent["tool_choice"] == "auto"
    assert sent["response_format"] == {"type": "json_object"}
    assert sent["vendor_knob"] == {"x": [1, 2]} and sent["seed"] == 7
    assert sent["temperature"] == 1.7  # OpenAI's profile does not clamp


def test_gateway_key_never_goes_upstream(make_gateway, upstream):
    gateway = make_gateway({"GATEWAY_API_KEYS": "gw-secret-1,gw-secret-2"})
    openai.OpenAI(
        base_url=gateway.base_url, api_key="gw-secret-2", max_retries=0
    ).chat.completions.create(model=MODEL, messages=HELLO)
    sent = upstream.chat_requests[0]
    assert b"gw-secret" not in sent.raw
    assert "gw-secret" not in repr(dict(sent.headers))


def test_tool_call_reply_passes_through(gateway, upstream):
    upstream.script(Reply.completion(tool_calls=[{"name": "lookup", "arguments": {"q": 1}}]))
    reply = client(gateway).chat.completions.create(model=MODEL, messages=HELLO)
    call = reply.choices[0].message.tool_calls[0]
    assert call.function.name == "lookup" and call.function.arguments == '{"q": 1}'


def test_request_id_generated_or_echoed(gateway):
    r = httpx2.get(gateway.url + "/healthz")
    assert len(r.headers["x-request-id"]) == 32
    r = httpx2.get(gateway.url + "/healthz", headers={"X-Request-Id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"


# -- Kimi quirks -----------------------------------------------------------------


@pytest.fixture
def kimi(make_gateway, upstream):
    upstream.models = ["kimi-k2-0905-preview", "moonshot-v1-8k", "gpt-4o", "kimi-k2.6"]
    return make_gateway({"KIMI_API_KEY": "sk-kimi", "KIMI_BASE_URL": upstream.base_url})


def test_kimi_temperature_clamped(kimi, upstream):
    c = client(kimi)
    c.chat.completions.create(model="kimi/kimi-k2-0905-preview", messages=HELLO, temperature=1.8)
    c.chat.completions.create(
        model="kimi/kimi-k2-0905-preview", messages=HELLO, temperature=0.1, n=2
    )
    assert upstream.chat_requests[0].json["temperature"] == 1.0
    assert upstream.chat_requests[1].json["temperature"] == 0.3


def test_kimi_k2_6_fixed_sampling_left_out_and_one_choice(kimi, upstream):
    c = client(kimi)
    c.chat.completions.create(
        model="kimi/kimi-k2.6", messages=HELLO, temperature=0.2, top_p=0.5, presence_penalty=1
    )
    sent = upstream.chat_requests[0].json
    assert sent["model"] == "kimi-k2.6"
    assert not {"temperature", "top_p", "presence_penalty"} & sent.keys()
    with pytest.raises(openai.BadRequestError) as err:
        c.chat.completions.create(model="kimi/kimi-k2.6", messages=HELLO, n=2)
    assert err.value.param == "n"
    assert len(upstream.chat_requests) == 1


def test_kimi_tool_choice_required_rejected(kimi, upstream):
    with pytest.raises(openai.BadRequestError) as err:
        client(kimi).chat.completions.create(
            model="kimi/kimi-k2-0905-preview",
            messages=HELLO,
            tool_choice="required",
            tools=[{"type": "function", "function": {"name": "f"}}],
        )
    assert err.value.param == "tool_choice" and err.value.code == "invalid_value"
    assert upstream.chat_requests == []


def test_kimi_structured_output_only_on_k2(kimi, upstream):
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    client(kimi).chat.completions.create(
        model="kimi/kimi-k2-0905-preview", messages=HELLO, response_format=fmt
    )
    assert upstream.chat_requests[0].json["response_format"] == fmt
    with pytest.raises(openai.BadRequestError) as err:
        client(kimi).chat.completions.create(
            model="kimi/moonshot-v1-8k", messages=HELLO, response_format=fmt
        )
    assert err.value.param == "response_format"


def test_kimi_usage_inside_choices_is_kept(kimi, upstream):
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    final = chunk(None, "stop")
    final["choices"][0]["usage"] = usage
    upstream.script(Reply.sse([chunk("hi"), final]))
    body = {"model": "kimi/kimi-k2-0905-preview", "messages": HELLO, "stream": True}
    r = httpx2.post(kimi.base_url + "/chat/completions", json=body)
    assert '"usage"' in r.text and r.text.rstrip().endswith("data: [DONE]")
