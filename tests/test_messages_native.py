"""`/v1/messages` through the native lane (an Anthropic provider, Kimi's Anthropic-compatible
endpoint) and `count_tokens` from the providers' own counters, with the anthropic SDK."""

from __future__ import annotations

import anthropic
import httpx2
import pytest

from tests.fake_anthropic import KEY, FakeAnthropic, error, event, events
from tests.fake_upstream import FakeUpstream, fake_token_count

CLAUDE = "anthropic/claude-sonnet-4-5"
HELLO = [{"role": "user", "content": "hello"}]
CONFIG = """
[[providers]]
name = "anthropic"
type = "anthropic"
retry_base_delay = 0.01
"""
BETAS = "claude-code-20250219,context-management-2025-06-27"


@pytest.fixture
def claude():
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def gateway(make_gateway, claude, tmp_path):
    config = tmp_path / "anthropic.toml"
    config.write_text(CONFIG)
    env = {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": claude.base_url}
    return make_gateway(env, config=config)


@pytest.fixture
def api(gateway):
    with anthropic.Anthropic(base_url=gateway.url, api_key="gw", max_retries=0) as client:
        yield client


def test_native_create_passes_the_body_through(api, claude):
    extra = {"context_management": {"edits": []}, "vendor_knob": [1, 2]}
    system = [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]
    message = api.messages.create(
        model=CLAUDE,
        max_tokens=32,
        system=system,
        messages=HELLO,
        thinking={"type": "enabled", "budget_tokens": 1024},
        extra_body=extra,
        extra_headers={"anthropic-beta": BETAS},
    )
    assert message.content[0].text == "echo: hello"
    sent = claude.messages_requests[0]
    assert sent.json == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 32,
        "system": system,
        "messages": HELLO,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        **extra,
    }
    assert sent.headers["anthropic-beta"] == BETAS
    assert sent.headers["x-api-key"] == KEY


def test_native_stream_relays_the_upstream_events(gateway, api, claude):
    with api.messages.stream(model=CLAUDE, max_tokens=32, messages=HELLO) as stream:
        message = stream.get_final_message()
    assert message.content[0].text == "echo: hello"
    assert claude.messages_requests[0].json["stream"] is True
    body = {"model": CLAUDE, "max_tokens": 8, "messages": HELLO, "stream": True}
    with httpx2.stream("POST", gateway.url + "/v1/messages", json=body, timeout=10) as reply:
        raw = reply.read()
    assert raw.startswith(b"event: message_start\n")
    assert b"event: ping\n" in raw  # the upstream's own events, as they were
    assert raw.endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')


def test_native_stream_signature_arrives_untouched(api, claude):
    from tests.fake_anthropic import message as scripted

    claude.script(scripted("Four.", thinking="2+2"))
    with api.messages.stream(model=CLAUDE, max_tokens=32, messages=HELLO) as stream:
        final = stream.get_final_message()
    assert final.content[0].type == "thinking"
    assert final.content[0].signature == "c2lnbmF0dXJl"  # only Anthropic's own bytes carry it


def test_native_upstream_429_and_midstream_cut(api, claude):
    # A Retry-After this long is not waited out: the client gets it at once.
    claude.script(error(429, "rate_limit_error", "slow down", retry_after="17"))
    with pytest.raises(anthropic.RateLimitError) as caught:
        api.messages.create(model=CLAUDE, max_tokens=8, messages=HELLO)
    assert caught.value.response.headers["retry-after"] == "17"
    assert caught.value.body["error"]["type"] == "rate_limit_error"
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 3, "output_tokens": 1},
        },
    }
    block = {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    claude.script(
        events([event("message_start", start), event("content_block_start", block)], cut_after=1)
    )
    with pytest.raises(anthropic.APIStatusError) as cut:
        with api.messages.stream(model=CLAUDE, max_tokens=8, messages=HELLO) as stream:
            list(stream)
    assert cut.value.body["error"]["type"] == "api_error"


def test_kimi_anthropic_base_url_goes_native(make_gateway, upstream, claude):
    upstream.models.append("kimi-k2.6")
    gateway = make_gateway(
        {
            "KIMI_API_KEY": KEY,
            "KIMI_BASE_URL": upstream.base_url,
            "KIMI_ANTHROPIC_BASE_URL": claude.base_url,
        }
    )
    with anthropic.Anthropic(base_url=gateway.url, api_key="gw", max_retries=0) as api:
        message = api.messages.create(model="kimi/kimi-k2.6", max_tokens=8, messages=HELLO)
        count = api.messages.count_tokens(model="kimi/kimi-k2.6", messages=HELLO)
    assert message.content[0].text == "echo: hello"
    assert claude.messages_requests[0].json["model"] == "kimi-k2.6"
    assert claude.messages_requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert upstream.chat_requests == []
    assert count.input_tokens == fake_token_count({"messages": HELLO})
    assert len(claude.count_requests) == 1


# -- count_tokens -------------------------------------------------------------------


def test_count_tokens_asks_anthropic(api, claude):
    messages = [{"role": "user", "content": "one two three four"}]
    count = api.messages.count_tokens(model=CLAUDE, messages=messages, system="sys")
    assert count.input_tokens == fake_token_count({"messages": messages})
    sent = claude.count_requests[0].json
    assert sent == {"model": "claude-sonnet-4-5", "messages": messages, "system": "sys"}


def test_count_tokens_unknown_model_is_anthropic_404(api, claude):
    with pytest.raises(anthropic.NotFoundError) as caught:
        api.messages.count_tokens(model="anthropic/claude-nope", messages=HELLO)
    assert caught.value.body["error"]["type"] == "not_found_error"


def test_count_tokens_asks_moonshot(make_gateway, upstream: FakeUpstream):
    upstream.models.append("kimi-k2.6")
    gateway = make_gateway({"KIMI_API_KEY": "sk-kimi", "KIMI_BASE_URL": upstream.base_url})
    tool = {"name": "weather", "input_schema": {"type": "object"}}
    messages = [{"role": "user", "content": "what is the weather"}]
    with anthropic.Anthropic(base_url=gateway.url, api_key="gw", max_retries=0) as api:
        bare = api.messages.count_tokens(model="kimi/kimi-k2.6", messages=messages, system="hi")
        with_tools = api.messages.count_tokens(
            model="kimi/kimi-k2.6", messages=messages, system="hi", tools=[tool]
        )
    sent = upstream.count_requests[0]
    assert sent.headers["authorization"] == "Bearer sk-kimi"
    assert sent.json == {
        "model": "kimi-k2.6",
        "messages": [{"role": "system", "content": "hi"}, *messages],
    }
    assert bare.input_tokens == fake_token_count(sent.json)
    # Moonshot's estimate takes no tools: theirs are estimated and added.
    assert with_tools.input_tokens > bare.input_tokens


def test_count_tokens_falls_back_to_an_estimate_when_the_counter_fails(make_gateway, upstream):
    upstream.models.append("kimi-k2.6")
    gateway = make_gateway({"KIMI_API_KEY": "sk-kimi", "KIMI_BASE_URL": upstream.base_url + "/x"})
    reply = httpx2.post(
        gateway.url + "/v1/messages/count_tokens",
        json={"model": "kimi/kimi-k2.6", "messages": HELLO},
        timeout=30,
    )
    # The model list still resolves (fallback list), the counter answers 404: estimated.
    assert reply.status_code == 200, reply.text
    assert reply.json()["input_tokens"] > 0
