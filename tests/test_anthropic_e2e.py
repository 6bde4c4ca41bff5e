"""End to end: the official openai SDK → real gateway → fake Anthropic Messages API."""

from __future__ import annotations

import json

import httpx2
import openai
import pytest

from tests.fake_anthropic import KEY, FakeAnthropic, error, error_body, event, events, message
from tests.promtext import wait_for

MODEL = "anthropic/claude-sonnet-4-5"
HELLO = [{"role": "user", "content": "hello"}]
# Fast retries keep the retry tests quick; the delay formula is unit-tested.
CONFIG = """
[[providers]]
name = "anthropic"
type = "anthropic"
retry_base_delay = 0.01
"""


@pytest.fixture
def anthropic():
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def gateway(make_gateway, anthropic, tmp_path):
    config = tmp_path / "anthropic.toml"
    config.write_text(CONFIG)
    env = {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": anthropic.base_url}
    return make_gateway(env, config=config)


def client(gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key="gw-key", max_retries=0)


def create(gateway, **kw):
    kw.setdefault("model", MODEL)
    kw.setdefault("messages", HELLO)
    return client(gateway).chat.completions.create(**kw)


def start_and_text(text: str) -> list[str]:
    msg = {
        "id": "msg_x",
        "type": "message",
        "role": "assistant",
        "model": "claude",
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": 7, "output_tokens": 1},
    }
    return [
        event("message_start", {"type": "message_start", "message": msg}),
        event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        event(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": text},
            },
        ),
    ]


# -- happy paths -----------------------------------------------------------------


def test_completion_translated_both_ways_with_key_as_x_api_key(gateway, anthropic):
    raw = client(gateway).chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "system", "content": "be brief"}, *HELLO]
    )
    reply = raw.parse()
    assert reply.choices[0].message.content == "echo: hello"
    assert reply.choices[0].finish_reason == "stop"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (7, 3)
    assert KEY not in raw.http_response.text
    sent = anthropic.messages_requests[0]
    assert sent.json == {
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}],
        "max_tokens": 4096,
        "system": "be brief",
    }
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers


def test_stream_without_and_with_usage(gateway, anthropic):
    chunks = list(create(gateway, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "echo: hello"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None and c.choices for c in chunks)
    assert anthropic.messages_requests[0].json["stream"] is True

    chunks = list(create(gateway, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 10

    # Metrics count the tokens of both streams, asked-for usage or not.
    series = {"provider": "anthropic", "model": "claude-sonnet-4-5"}
    m = wait_for(gateway.url, lambda m: m.sum("gateway_llm_requests_total", **series) == 2)
    assert m.sum("gateway_llm_tokens_total", kind="completion", **series) == 6
    assert m.sum("gateway_llm_tokens_total", kind="prompt", **series) == 14


def test_tool_call_round_trip(gateway, anthropic):
    anthropic.script(
        message(tool_uses=[{"id": "toolu_1", "name": "lookup", "input": {"q": "answer"}}])
    )
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": {"type": "object", "properties": {"q": {}}},
            },
        }
    ]
    first = create(gateway, tools=tools, tool_choice="required")
    assert first.choices[0].finish_reason == "tool_calls"
    call = first.choices[0].message.tool_calls[0]
    assert call.id == "toolu_1" and call.function.name == "lookup"
    assert json.loads(call.function.arguments) == {"q": "answer"}

    history = [
        *HELLO,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "42"},
    ]
    second = create(gateway, messages=history, tools=tools)
    assert second.choices[0].message.content == "tool said: 42"

    sent_first, sent_second = (r.json for r in anthropic.messages_requests)
    assert sent_first["tool_choice"] == {"type": "any"}
    assert sent_first["tools"][0]["input_schema"] == tools[0]["function"]["parameters"]
    assert sent_second["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "answer"}}
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "42"}],
        },
    ]


def test_streamed_tool_call_and_thinking(gateway, anthropic):
    anthropic.script(
        message(
            thinking="think first",
            tool_uses=[{"id": "toolu_9", "name": "lookup", "input": {"q": "a longer query"}}],
        )
    )
    chunks = list(create(gateway, stream=True, reasoning_effort="low"))
    deltas = [c.choices[0].delta for c in chunks]
    reasoning = "".join((d.model_extra or {}).get("reasoning_content", "") for d in deltas)
    assert reasoning == "think first"
    fragments = [t for d in deltas for t in d.tool_calls or []]
    assert fragments[0].id == "toolu_9" and fragments[0].function.name == "lookup"
    arguments = "".join(f.function.arguments or "" for f in fragments)
    assert json.loads(arguments) == {"q": "a longer query"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    sent = anthropic.messages_requests[0].json
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 1024}


def test_models_listed_with_aliases_and_context_windows(gateway, anthropic):
    models = {m.id: m for m in client(gateway).models.list()}
    for handle in ("anthropic/claude-sonnet-4-5-20250929", "anthropic/claude-sonnet-4-5"):
        assert models[handle].model_extra["context_window"] == 200000
    listed = anthropic.models_requests[0]
    assert listed.headers["x-api-key"] == KEY and listed.query == {"limit": "1000"}


def test_models_fall_back_to_built_in_list(gateway, anthropic):
    anthropic.script_models(error(500, "api_error"))
    ids = {m.id for m in client(gateway).models.list()}
    assert "anthropic/claude-haiku-4-5" in ids and "anthropic/claude-opus-4-1" in ids


# -- errors ----------------------------------------------------------------------


def test_rejected_fields_never_reach_anthropic(gateway, anthropic):
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    for kw, param in (({"response_format": schema}, "response_format"), ({"n": 2}, "n")):
        with pytest.raises(openai.BadRequestError) as err:
            create(gateway, **kw)
        assert err.value.param == param and err.value.code == "invalid_value"
    assert anthropic.messages_requests == []


def test_wrong_provider_key_is_502_and_never_echoed(make_gateway, anthropic, tmp_path):
    config = tmp_path / "a.toml"
    config.write_text(CONFIG)
    env = {"ANTHROPIC_API_KEY": "sk-ant-wrong-secret", "ANTHROPIC_BASE_URL": anthropic.base_url}
    gateway = make_gateway(env, config=config)
    r = httpx2.post(
        gateway.base_url + "/chat/completions", json={"model": MODEL, "messages": HELLO}
    )
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "upstream_authentication_failed"
    assert "sk-ant-wrong-secret" not in r.text


@pytest.mark.parametrize(
    ("reply", "exc", "code"),
    [
        (
            error(400, "invalid_request_error", "prompt is too long"),
            openai.BadRequestError,
            "invalid_request_error",
        ),
        (error(404, "not_found_error", "model: nope"), openai.NotFoundError, "model_not_found"),
        (
            error(403, "permission_error"),
            openai.InternalServerError,
            "upstream_authentication_failed",
        ),
    ],
)
def test_upstream_errors_mapped(gateway, anthropic, reply, exc, code):
    anthropic.script(reply)
    with pytest.raises(exc) as err:
        create(gateway)
    assert err.value.code == code
    assert len(anthropic.messages_requests) == 1  # not retried


def test_rate_limit_retried_then_passed_on_with_retry_after(gateway, anthropic):
    anthropic.script(*[error(429, "rate_limit_error", "slow down", retry_after="0")] * 3)
    with pytest.raises(openai.RateLimitError) as err:
        create(gateway)
    assert err.value.code == "upstream_rate_limited"
    assert err.value.response.headers["retry-after"] == "0"
    assert len(anthropic.messages_requests) == 3


def test_overloaded_529_retried(gateway, anthropic):
    anthropic.script(error(529, "overloaded_error", "Overloaded"))
    assert create(gateway).choices[0].message.content == "echo: hello"
    anthropic.script(*[error(529, "overloaded_error", "Overloaded")] * 3)
    with pytest.raises(openai.InternalServerError) as err:
        create(gateway, stream=True)
    assert err.value.status_code == 502 and err.value.code == "upstream_unavailable"
    assert len(anthropic.messages_requests) == 2 + 3


def test_in_stream_overload_before_content_is_retried(gateway, anthropic):
    head = start_and_text("x")[:1]  # message_start only: no content has gone out
    anthropic.script(events([*head, event("error", error_body("overloaded_error", "Overloaded"))]))
    chunks = list(create(gateway, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "echo: hello"
    assert len(anthropic.messages_requests) == 2
    m = wait_for(gateway.url, lambda m: m.sum("gateway_llm_retries_total") == 1)
    assert m.sum("gateway_llm_retries_total", provider="anthropic") == 1


def _stream_text(gateway) -> str:
    body = {"model": MODEL, "messages": HELLO, "stream": True}
    return httpx2.post(gateway.base_url + "/chat/completions", json=body).text


def test_in_stream_error_after_content_ends_with_error_event(gateway, anthropic):
    broken = event("error", error_body("overloaded_error", "Overloaded"))
    anthropic.script(events([*start_and_text("partial"), broken]))
    frames = [f for f in _stream_text(gateway).split("\n\n") if f]
    assert '"content":"partial"' in frames[1]
    # The error event is the stream's last word (DESIGN), no [DONE] after it.
    error_frame = json.loads(frames[-1].removeprefix("data: "))
    assert error_frame["error"]["code"] == "upstream_unavailable"
    assert "data: [DONE]" not in frames
    assert len(anthropic.messages_requests) == 1  # never retried after the first byte


def test_stream_cut_midway_ends_with_error_event(gateway, anthropic):
    anthropic.script(events(start_and_text("partial") * 2, cut_after=4))
    text = _stream_text(gateway)
    assert '"content":"partial"' in text
    last = json.loads(text.strip().split("\n\n")[-1].removeprefix("data: "))
    assert last["error"]["code"] == "upstream_unavailable"


def test_agent_turn_with_a_tool_step_runs_on_anthropic(gateway, anthropic):
    agent = {
        "name": "ada",
        "model": MODEL,
        "system": "You are Ada.",
        "memory_blocks": [{"label": "human", "value": "", "limit": 200}],
    }
    assert httpx2.post(gateway.base_url + "/agents", json=agent).status_code == 201
    remember = {"label": "human", "content": "name: Grace"}
    anthropic.script(
        message(tool_uses=[{"id": "toolu_m", "name": "core_memory_append", "input": remember}]),
        message("Noted, Grace."),
    )
    chunks = list(
        create(
            gateway,
            model="agent/ada",
            stream=True,
            messages=[{"role": "user", "content": "I am Grace"}],
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Noted, Grace."
    )
    second = anthropic.messages_requests[1].json
    assert "You are Ada." in second["system"] and "name: Grace" in second["system"]
    assert second["messages"][-2]["content"][-1]["type"] == "tool_use"
    result = second["messages"][-1]["content"][0]
    assert result["type"] == "tool_result" and result["tool_use_id"] == "toolu_m"
