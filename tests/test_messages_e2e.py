"""End to end: the official anthropic SDK → real gateway `/v1/messages` → fake OpenAI-style
upstream (translation), with the upstream's real wire format."""

from __future__ import annotations

import anthropic
import httpx2
import pytest

from tests.fake_upstream import Reply

MODEL = "openai/gpt-4o-mini"
HELLO = [{"role": "user", "content": "hello"}]
WEATHER = {
    "name": "weather",
    "description": "Weather of a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture
def client():
    """Anthropic clients for a gateway, closed after the test (no leaked sockets)."""
    made: list[anthropic.Anthropic] = []

    def make(gateway, **kwargs) -> anthropic.Anthropic:
        kwargs.setdefault("api_key", "gw-key")
        made.append(anthropic.Anthropic(base_url=gateway.url, max_retries=0, **kwargs))
        return made[-1]

    yield make
    for api in made:
        api.close()


def test_create_translates_request_and_reply(client, gateway, upstream):
    upstream.script(
        Reply.completion("Bonjour!", usage={"prompt_tokens": 12, "completion_tokens": 4})
    )
    message = client(gateway).messages.create(
        model=MODEL,
        max_tokens=256,
        system=[{"type": "text", "text": "Be French.", "cache_control": {"type": "ephemeral"}}],
        messages=HELLO,
        metadata={"user_id": "u-1"},
        # This SDK no longer types sampling knobs; older clients still send them.
        extra_body={"temperature": 0.5},
    )
    assert message.type == "message" and message.role == "assistant"
    assert message.model == MODEL
    assert [(b.type, b.text) for b in message.content] == [("text", "Bonjour!")]
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 4)
    sent = upstream.chat_requests[0].json
    assert sent["model"] == "gpt-4o-mini"
    assert sent["messages"] == [
        {"role": "system", "content": "Be French."},
        {"role": "user", "content": "hello"},
    ]
    assert sent["max_completion_tokens"] == 256 and sent["temperature"] == 0.5
    assert sent["user"] == "u-1"


def test_beta_query_version_headers_and_bearer_key(client, make_gateway, upstream):
    """What Claude Code sends: `?beta=true`, a long beta list, any version."""
    gateway = make_gateway({"GATEWAY_API_KEYS": "gw-secret"})
    headers = {
        "anthropic-version": "2026-10-21",
        "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
    }
    message = client(gateway, api_key=None, auth_token="gw-secret").beta.messages.create(
        model=MODEL, max_tokens=64, messages=HELLO, extra_headers=headers
    )
    assert message.content[0].text == "echo: hello"
    with client(gateway, api_key="gw-secret") as by_x_api_key:
        assert by_x_api_key.messages.create(model=MODEL, max_tokens=8, messages=HELLO).content


def test_stream_text_and_thinking(client, gateway, upstream):
    upstream.script(Reply.completion("The answer is 4.", reasoning_content="2 plus 2 is 4."))
    with client(gateway).messages.stream(model=MODEL, max_tokens=64, messages=HELLO) as stream:
        kinds = [event.type for event in stream]
        message = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "2 plus 2 is 4."
    assert message.content[1].text == "The answer is 4."
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (7, 3)
    assert upstream.chat_requests[0].json["stream_options"] == {"include_usage": True}


def test_stream_tool_call_fragments_arrive_as_tool_use_blocks(client, gateway, upstream):
    args = '{"city": "Paris", "units": "metric"}'
    upstream.script(
        Reply.completion(
            "Let me look.",
            tool_calls=[
                {"id": "call_1", "name": "weather", "arguments": args},
                {"id": "call_2", "name": "weather", "arguments": {"city": "Oslo"}},
            ],
        )
    )
    with client(gateway).messages.stream(
        model=MODEL, max_tokens=64, messages=HELLO, tools=[WEATHER]
    ) as stream:
        events = list(stream)
        message = stream.get_final_message()
    fragments = [
        e.delta.partial_json
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    ]
    assert len(fragments) > 2  # streamed in pieces, not in one block
    assert [b.type for b in message.content] == ["text", "tool_use", "tool_use"]
    assert message.content[1].id == "call_1" and message.content[1].name == "weather"
    assert message.content[1].input == {"city": "Paris", "units": "metric"}
    assert message.content[2].input == {"city": "Oslo"}
    assert message.stop_reason == "tool_use"
    sent = upstream.chat_requests[0].json
    assert sent["tools"][0]["function"]["name"] == "weather"


def test_tool_round_trip(client, gateway, upstream):
    upstream.script(
        Reply.completion(
            tool_calls=[{"id": "call_9", "name": "weather", "arguments": {"city": "Rome"}}],
            reasoning_content="Rome: call the tool.",
        ),
        Reply.completion("Sunny in Rome."),
    )
    api = client(gateway)
    messages: list = [{"role": "user", "content": "Weather in Rome?"}]
    first = api.messages.create(model=MODEL, max_tokens=64, messages=messages, tools=[WEATHER])
    assert first.stop_reason == "tool_use"
    assert first.content[0].type == "thinking"
    assert first.content[0].thinking == "Rome: call the tool."
    use = first.content[-1]
    assert use.type == "tool_use" and use.input == {"city": "Rome"}
    messages += [
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny, 24 C"}],
        },
    ]
    second = api.messages.create(
        model=MODEL, max_tokens=64, messages=messages, tools=[WEATHER], tool_choice={"type": "any"}
    )
    assert second.content[0].text == "Sunny in Rome."
    sent = upstream.chat_requests[1].json
    assert sent["messages"][1]["tool_calls"][0]["id"] == "call_9"
    # OpenAI refuses fields it does not know on messages: the thinking stays out.
    assert "reasoning_content" not in sent["messages"][1]
    assert sent["messages"][2] == {
        "role": "tool",
        "tool_call_id": "call_9",
        "content": "sunny, 24 C",
    }
    assert sent["tool_choice"] == "required"


def test_kimi_gets_auto_for_any_and_thinking_history(client, make_gateway, upstream):
    gateway = make_gateway({"KIMI_API_KEY": "sk-kimi", "KIMI_BASE_URL": upstream.base_url})
    upstream.models.append("kimi-k2.6")
    history = [
        {"role": "user", "content": "2+2?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Add them.", "signature": ""},
                {"type": "tool_use", "id": "t1", "name": "weather", "input": {}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "4"}]},
    ]
    client(gateway).messages.create(
        model="kimi/kimi-k2.6",
        max_tokens=64,
        messages=history,
        tools=[WEATHER],
        tool_choice={"type": "any"},
    )
    sent = upstream.chat_requests[0].json
    assert sent["tool_choice"] == "auto"
    assert sent["messages"][1]["reasoning_content"] == "Add them."


def test_count_tokens_estimate(client, gateway, upstream):
    api = client(gateway)
    small = api.messages.count_tokens(model=MODEL, messages=HELLO)
    large = api.messages.count_tokens(
        model=MODEL, system="x" * 4000, messages=HELLO, tools=[WEATHER]
    )
    assert small.input_tokens > 0
    assert large.input_tokens >= small.input_tokens + 1000
    assert upstream.chat_requests == []


# -- errors -------------------------------------------------------------------------


def error_of(exc: anthropic.APIStatusError) -> dict:
    body = exc.body
    assert isinstance(body, dict) and body["type"] == "error"
    return body["error"]


def test_wrong_key_is_anthropic_401(client, make_gateway, upstream):
    gateway = make_gateway({"GATEWAY_API_KEYS": "gw-secret"})
    with pytest.raises(anthropic.AuthenticationError) as caught:
        client(gateway, api_key="wrong").messages.create(model=MODEL, max_tokens=8, messages=HELLO)
    assert caught.value.status_code == 401
    assert error_of(caught.value)["type"] == "authentication_error"
    assert upstream.chat_requests == []


def test_unknown_model_is_not_found_error(client, gateway):
    with pytest.raises(anthropic.NotFoundError) as caught:
        client(gateway).messages.create(model="openai/nope", max_tokens=8, messages=HELLO)
    assert error_of(caught.value)["type"] == "not_found_error"
    assert "nope" in error_of(caught.value)["message"]


def test_invalid_request_is_400(client, gateway):
    with pytest.raises(anthropic.BadRequestError) as caught:
        client(gateway).messages.create(
            model=MODEL, max_tokens=8, messages=[{"role": "tool", "content": "x"}]
        )
    assert error_of(caught.value)["type"] == "invalid_request_error"
    assert "messages.0.role" in error_of(caught.value)["message"]


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
def test_bad_json_and_413_are_anthropic_shaped(make_gateway, path):
    gateway = make_gateway(max_body_bytes=2048)
    bad = httpx2.post(gateway.url + path, content=b"{nope", timeout=10)
    assert bad.status_code == 400
    assert bad.json()["type"] == "error"
    assert bad.json()["error"]["type"] == "invalid_request_error"
    big = httpx2.post(gateway.url + path, content=b"x" * 4000, timeout=10)
    assert big.status_code == 413
    assert big.json()["error"]["type"] == "request_too_large"


def test_unknown_subpath_is_anthropic_404(gateway):
    reply = httpx2.post(gateway.url + "/v1/messages/batches", json={}, timeout=10)
    assert reply.status_code == 404
    assert reply.json()["error"]["type"] == "not_found_error"


def test_upstream_429_is_rate_limit_error_with_retry_after(client, gateway, upstream):
    upstream.script(*[Reply.error(429, "slow down", retry_after=30)] * 3)
    for stream in (False, True):
        upstream.script(*[Reply.error(429, "slow down", retry_after=30)] * 3)
        with pytest.raises(anthropic.RateLimitError) as caught:
            client(gateway).messages.create(
                model=MODEL, max_tokens=8, messages=HELLO, stream=stream
            )
        assert caught.value.response.headers["retry-after"] == "30"
        assert error_of(caught.value)["type"] == "rate_limit_error"


def test_stream_failing_after_start_ends_with_error_event(client, gateway, upstream):
    base = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "gpt-4o-mini"}
    chunk = {
        **base,
        "choices": [{"index": 0, "delta": {"content": "partial"}, "finish_reason": None}],
    }
    upstream.script(Reply.sse([chunk, chunk, chunk], cut_after=2))
    with pytest.raises(anthropic.APIStatusError) as caught:
        with client(gateway).messages.stream(model=MODEL, max_tokens=8, messages=HELLO) as stream:
            for _ in stream:
                pass
    assert error_of(caught.value)["type"] == "api_error"


def test_stream_error_frame_on_the_wire(gateway, upstream):
    base = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "gpt-4o-mini"}
    chunk = {**base, "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]}
    upstream.script(Reply.sse([chunk, chunk], cut_after=1))
    body = {"model": MODEL, "max_tokens": 8, "messages": HELLO, "stream": True}
    with httpx2.stream("POST", gateway.url + "/v1/messages", json=body, timeout=10) as reply:
        text = reply.read().decode()
    assert reply.status_code == 200
    assert text.startswith("event: message_start\n")
    assert text.rstrip().split("\n\n")[-1].startswith('event: error\ndata: {"type":"error"')


def test_thinking_becomes_reasoning_effort_only_where_the_model_takes_it(client, gateway, upstream):
    upstream.models.append("o3-mini")
    api = client(gateway)
    thinking = {"type": "enabled", "budget_tokens": 2048}
    for model in ("openai/o3-mini", MODEL):
        api.messages.create(model=model, max_tokens=4096, messages=HELLO, thinking=thinking)
    reasoning, plain = (r.json for r in upstream.chat_requests)
    assert reasoning["reasoning_effort"] == "low"
    assert "reasoning_effort" not in plain and "thinking" not in plain


def test_tools_only_anthropic_runs_are_dropped_and_named(client, gateway, upstream):
    tools = [WEATHER, {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}]
    reply = client(gateway).messages.with_raw_response.create(
        model=MODEL, max_tokens=8, messages=HELLO, tools=tools
    )
    assert reply.headers["x-gateway-dropped-tools"] == "web_search"
    assert [t["function"]["name"] for t in upstream.chat_requests[0].json["tools"]] == ["weather"]
