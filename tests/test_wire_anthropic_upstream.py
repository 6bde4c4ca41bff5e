"""Unit tests of the pure translation to and from an Anthropic upstream (no network).

Replies and streams are checked as the internal representation and, encoded by the
OpenAI chat translator, as the chunks an OpenAI client of an Anthropic model gets.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import SecretStr

from gateway import errors
from gateway.providers.base import ProviderSpec
from gateway.providers.profiles import ANTHROPIC
from gateway.providers.retry import RetryPolicy
from gateway.providers.wires import AnthropicWire
from gateway.wire.anthropic_upstream import (
    completion_of,
    finish_reason,
    stream_error,
    to_anthropic_request,
)
from gateway.wire.anthropic_upstream_stream import StreamDecoder
from gateway.wire.internal import Finish, Start, StreamEvent
from gateway.wire.openai_chat import ChunkEncoder, reply_of

MODEL = "claude-sonnet-4-5"


def translate(messages: list[dict[str, Any]], **body: Any) -> dict[str, Any]:
    return to_anthropic_request({"model": "anthropic/x", "messages": messages, **body}, MODEL)


def rejected(param: str, messages: list[dict[str, Any]] | None = None, **body: Any) -> str:
    with pytest.raises(errors.InvalidRequest) as err:
        translate(messages or [{"role": "user", "content": "hi"}], **body)
    assert err.value.param == param and err.value.status == 400
    return err.value.message


# -- requests --------------------------------------------------------------------


def test_full_request_maps_knobs_and_drops_openai_only_fields():
    out = translate(
        [{"role": "user", "content": "hi", "name": "ada"}],
        temperature=1.7,
        top_p=0.9,
        stop="END",
        user="u-1",
        stream=True,
        stream_options={"include_usage": True},
        seed=7,
        frequency_penalty=0.5,
        logprobs=True,
        n=1,
        response_format={"type": "text"},
    )
    assert out == {
        "model": MODEL,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "max_tokens": 4096,
        "temperature": 1.0,  # OpenAI's [0, 2] clamped to Anthropic's [0, 1]
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "u-1"},
        "stream": True,
    }


def test_max_tokens_and_max_completion_tokens():
    hi = [{"role": "user", "content": "hi"}]
    assert translate(hi, max_tokens=100)["max_tokens"] == 100
    assert translate(hi, max_tokens=100, max_completion_tokens=50)["max_tokens"] == 50
    assert translate(hi, stop=["a", "b"])["stop_sequences"] == ["a", "b"]


def test_reasoning_effort_becomes_a_thinking_budget_with_room_to_answer():
    hi = [{"role": "user", "content": "hi"}]
    out = translate(hi, reasoning_effort="low")
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert out["max_tokens"] == 4096 + 1024
    assert "thinking" not in translate(hi, reasoning_effort="minimal")
    own = {"type": "enabled", "budget_tokens": 3000}
    assert translate(hi, thinking=own, max_tokens=8000)["thinking"] == own


def test_system_and_developer_messages_are_hoisted():
    out = translate(
        [
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": [{"type": "text", "text": "use metric"}]},
            {"role": "user", "content": "hi"},
        ]
    )
    assert out["system"] == "be brief\n\nuse metric"
    assert [t["role"] for t in out["messages"]] == ["user"]


def test_images_data_url_as_base64_and_http_url_as_url():
    parts = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]
    content = translate([{"role": "user", "content": parts}])["messages"][0]["content"]
    assert content == [
        {"type": "text", "text": "what is this?"},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


def test_unsupported_content_is_a_400_naming_the_part():
    bad_url = [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]
    rejected("messages[0].content[0].image_url", [{"role": "user", "content": bad_url}])
    audio = [{"type": "text", "text": "hi"}, {"type": "input_audio", "input_audio": {}}]
    rejected("messages[0].content[1].type", [{"role": "user", "content": audio}])
    image_in_system = [{"type": "image_url", "image_url": {"url": "https://e.com/a.png"}}]
    rejected("messages[0].content", [{"role": "system", "content": image_in_system}])


def test_tool_calls_and_results_round_trip_in_anthropic_turns():
    messages = [
        {"role": "user", "content": "weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "reasoning_content": "the user wants weather",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                },
                # Another provider's id style; Anthropic allows only [A-Za-z0-9_-].
                {
                    "id": "functions.weather:1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": ""},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {
            "role": "tool",
            "tool_call_id": "functions.weather:1",
            "content": [{"type": "text", "text": "rain"}],
        },
        {"role": "user", "content": "thanks"},
    ]
    assert translate(messages)["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "weather in Paris and Rome?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "functions_weather_1", "name": "weather", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
                {
                    "type": "tool_result",
                    "tool_use_id": "functions_weather_1",
                    "content": [{"type": "text", "text": "rain"}],
                },
                {"type": "text", "text": "thanks"},
            ],
        },
    ]


def test_same_role_turns_merge_and_tool_results_go_first():
    out = translate(
        [
            {"role": "user", "content": "a"},
            {"role": "user", "content": ""},  # empty: dropped, Anthropic rejects empty text
            {"role": "user", "content": [{"type": "text", "text": "b"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "user", "content": "note first"},
            {"role": "tool", "tool_call_id": "t1", "content": ""},
        ]
    )["messages"]
    assert out[0] == {
        "role": "user",
        "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
    }
    assert [b["type"] for b in out[2]["content"]] == ["tool_result", "text"]
    assert out[2]["content"][0] == {"type": "tool_result", "tool_use_id": "t1"}


@pytest.mark.parametrize("arguments", ["not json", "[1, 2]", '"x"'])
def test_tool_call_arguments_must_be_a_json_object(arguments):
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}
    messages = [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [call]}]
    rejected("messages[1].tool_calls[0].function.arguments", messages)


def test_malformed_tool_messages_are_400s():
    rejected("messages[0].tool_call_id", [{"role": "tool", "content": "x"}])
    rejected("messages[0].role", [{"role": "function", "name": "f", "content": "x"}])
    no_id = {"type": "function", "function": {"name": "f", "arguments": "{}"}}
    rejected("messages[0].tool_calls[0].id", [{"role": "assistant", "tool_calls": [no_id]}])


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, None),
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        ({"type": "function", "function": {"name": "lookup"}}, {"type": "tool", "name": "lookup"}),
    ],
)
def test_tools_and_tool_choice(choice, expected):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": "find things",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
                "strict": True,
            },
        },
        {"type": "function", "function": {"name": "now"}},
    ]
    out = translate([{"role": "user", "content": "x"}], tools=tools, tool_choice=choice)
    assert out["tools"] == [
        {
            "name": "lookup",
            "description": "find things",
            "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert out.get("tool_choice") == expected


def test_parallel_tool_calls_false_and_tool_choice_without_tools():
    tools = [{"type": "function", "function": {"name": "f"}}]
    hi = [{"role": "user", "content": "x"}]
    out = translate(hi, tools=tools, parallel_tool_calls=False)
    assert out["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    out = translate(hi, tools=tools, tool_choice="required", parallel_tool_calls=False)
    assert out["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert "tool_choice" not in translate(hi, tool_choice="auto")


def test_unsupported_tools_and_tool_choice_are_400s():
    rejected("tools[0].type", tools=[{"type": "web_search"}])
    rejected("tools[0].type", tools=["lookup"])
    tools = [{"type": "function", "function": {"name": "f"}}]
    rejected("tool_choice", tools=tools, tool_choice="sometimes")


def test_n_above_one_and_json_response_formats_are_rejected():
    assert "one choice" in rejected("n", n=2)
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    assert "json_schema" in rejected("response_format", response_format=schema)
    rejected("response_format", response_format={"type": "json_object"})


# -- whole replies ---------------------------------------------------------------


def to_openai_completion(message: dict[str, Any], created: int) -> dict[str, Any]:
    return reply_of(completion_of(message, created))


def test_text_reply_with_cache_usage():
    reply = to_openai_completion(
        {
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "!"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": 10,
                "cache_read_input_tokens": 5,
                "cache_creation_input_tokens": 2,
                "output_tokens": 4,
            },
        },
        created=123,
    )
    assert reply == {
        "id": "msg_01",
        "object": "chat.completion",
        "created": 123,
        "model": "claude-sonnet-4-5-20250929",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello!"},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 17,
            "completion_tokens": 4,
            "total_tokens": 21,
            "prompt_tokens_details": {"cached_tokens": 5},
        },
    }


def test_tool_use_and_thinking_reply():
    reply = to_openai_completion(
        {
            "id": "msg_02",
            "type": "message",
            "model": "m",
            "content": [
                {"type": "thinking", "thinking": "need the tool", "signature": "sig"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "x"}},
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 1, "output_tokens": 2},
        },
        created=1,
    )
    message = reply["choices"][0]["message"]
    assert message["content"] is None
    assert message["reasoning_content"] == "need the tool"
    call = message["tool_calls"][0]
    assert call["id"] == "toolu_1" and call["type"] == "function"
    assert call["function"]["name"] == "lookup"
    assert json.loads(call["function"]["arguments"]) == {"q": "x"}
    assert reply["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        (None, None),
    ],
)
def test_finish_reasons(stop, finish):
    assert finish_reason(stop) == finish


# -- errors ----------------------------------------------------------------------


def _body(kind: str) -> bytes:
    return json.dumps({"type": "error", "error": {"type": kind, "message": "m"}}).encode()


@pytest.mark.parametrize(
    ("status", "kind", "cls", "code"),
    [
        (400, "invalid_request_error", errors.UpstreamBadRequest, "invalid_request_error"),
        (401, "authentication_error", errors.UpstreamAuthFailed, "upstream_authentication_failed"),
        (403, "permission_error", errors.UpstreamAuthFailed, "upstream_authentication_failed"),
        (404, "not_found_error", errors.ModelNotFound, "model_not_found"),
        (429, "rate_limit_error", errors.UpstreamRateLimited, "upstream_rate_limited"),
        (500, "api_error", errors.UpstreamUnavailable, "upstream_unavailable"),
        (529, "overloaded_error", errors.UpstreamUnavailable, "upstream_unavailable"),
    ],
)
def test_anthropic_errors_map_the_same_over_http_and_in_stream(status, kind, cls, code):
    over_http = errors.from_upstream("anthropic", status, _body(kind))
    in_stream = stream_error("anthropic", json.loads(_body(kind)))
    for err in (over_http, in_stream):
        assert type(err) is cls and err.code == code
    retried = RetryPolicy(3, 0.5, 10).delay_for(over_http, 1, None) is not None
    assert retried == (status in (429, 500, 529))


def test_unknown_in_stream_error_type_is_upstream_unavailable():
    err = stream_error("anthropic", {"type": "error", "error": {"type": "brand_new_error"}})
    assert isinstance(err, errors.UpstreamUnavailable)


# -- streams ---------------------------------------------------------------------

# As the API sends them (shape of the Messages streaming docs' examples).
TEXT_STREAM = b"""event: message_start
data: {"type":"message_start","message":{"id":"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5-20250929","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_read_input_tokens":3,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"!"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}

event: message_stop
data: {"type":"message_stop"}

"""  # noqa: E501

TOOL_STREAM = b"""event: message_start
data: {"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","stop_sequence":null,"usage":{"input_tokens":472,"output_tokens":2},"content":[],"stop_reason":null}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Weather: use the tool."}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Okay, checking."}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\\"location\\": \\"San Fra"}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"ncisco, CA\\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":2}

event: content_block_start
data: {"type":"content_block_start","index":3,"content_block":{"type":"tool_use","id":"toolu_02","name":"get_time","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":3}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}

"""  # noqa: E501


def chunks_of(out: bytes) -> list[Any]:
    """Each `data:` payload: a dict, or the string "[DONE]"."""
    frames = [f for f in out.split(b"\n\n") if f]
    assert all(f.startswith(b"data: ") for f in frames)
    return [f[6:].decode() if f == b"data: [DONE]" else json.loads(f[6:]) for f in frames]


class Translation:
    """A stream decoded to internal events, then encoded as OpenAI chunks."""

    def __init__(self, include_usage: bool) -> None:
        self.decoder = StreamDecoder("anthropic", created=42)
        self.encoder = ChunkEncoder(include_usage=include_usage)
        self.events: list[StreamEvent] = []

    def feed(self, block: bytes) -> bytes:
        out = b""
        for event in block.split(b"\n\n"):
            if not event.strip():
                continue
            for decoded in self.decoder.feed_event(event):
                self.events.append(decoded)
                out += self.encoder.encode(decoded)
            if self.decoder.error is not None:
                out += b"data: " + self.decoder.error.json_bytes() + b"\n\n"
                break
        if self.decoder.done:
            out += self.encoder.done()
        return out


def run(stream: bytes, include_usage: bool = True) -> tuple[StreamDecoder, list[Any]]:
    translation = Translation(include_usage)
    return translation.decoder, chunks_of(translation.feed(stream))


def test_text_stream_becomes_openai_chunks():
    translator, chunks = run(TEXT_STREAM)
    assert chunks[-1] == "[DONE]"
    body, usage = chunks[:-2], chunks[-2]
    for c in body:
        assert c["id"] == "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY"
        assert c["object"] == "chat.completion.chunk" and c["created"] == 42
        assert c["model"] == "claude-sonnet-4-5-20250929"
    deltas = [c["choices"][0]["delta"] for c in body]
    assert deltas == [
        {"role": "assistant", "content": ""},
        {"content": "Hello"},
        {"content": "!"},
        {},
    ]
    assert [c["choices"][0]["finish_reason"] for c in body] == [None, None, None, "stop"]
    assert usage["choices"] == []
    assert usage["usage"] == {
        "prompt_tokens": 28,
        "completion_tokens": 15,
        "total_tokens": 43,
        "prompt_tokens_details": {"cached_tokens": 3},
    }
    assert translator.started and translator.finished and translator.done
    assert translator.error is None


def test_usage_chunk_only_when_asked_but_usage_always_counted():
    translator, chunks = run(TEXT_STREAM, include_usage=False)
    assert all(c == "[DONE]" or c["choices"] for c in chunks)
    assert translator.usage.completion_tokens == 15


def test_events_are_start_deltas_and_one_finish_with_the_final_usage():
    translation = Translation(include_usage=False)
    translation.feed(TEXT_STREAM)
    events = translation.events
    assert isinstance(events[0], Start) and events[0].id.startswith("msg_")
    assert isinstance(events[-1], Finish) and events[-1].reason == "stop"
    assert events[-1].usage is not None and events[-1].usage.prompt_tokens == 28
    assert sum(isinstance(e, Finish) for e in events) == 1


def test_tool_use_stream_with_thinking():
    _, chunks = run(TOOL_STREAM, include_usage=False)
    assert chunks[-1] == "[DONE]"
    deltas = [c["choices"][0]["delta"] for c in chunks[:-1]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("reasoning_content", "") for d in deltas) == "Weather: use the tool."
    assert "".join(d.get("content") or "" for d in deltas) == "Okay, checking."
    calls: dict[int, dict[str, str]] = {}
    for d in deltas:
        for fragment in d.get("tool_calls", []):
            call = calls.setdefault(fragment["index"], {"id": "", "name": "", "arguments": ""})
            call["id"] += fragment.get("id") or ""
            call["name"] += fragment.get("function", {}).get("name") or ""
            call["arguments"] += fragment["function"]["arguments"]
    # Tool call indexes count tool calls, not Anthropic's content blocks.
    assert calls == {
        0: {
            "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
            "name": "get_weather",
            "arguments": '{"location": "San Francisco, CA"}',
        },
        1: {"id": "toolu_02", "name": "get_time", "arguments": "{}"},
    }
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


def _error_event(kind: str) -> bytes:
    data = {"type": "error", "error": {"type": kind, "message": "Overloaded"}}
    return b"event: error\ndata: " + json.dumps(data).encode() + b"\n\n"


def test_error_after_content_is_reported_after_the_content():
    head = TEXT_STREAM.split(b"event: content_block_stop")[0]
    translator, chunks = run(head + _error_event("overloaded_error"))
    assert chunks[-1] == {
        "error": {
            "message": "anthropic: Overloaded",
            "type": "upstream_error",
            "param": None,
            "code": "upstream_unavailable",
        }
    }
    assert "[DONE]" not in chunks
    assert translator.started and not translator.finished
    assert isinstance(translator.error, errors.UpstreamUnavailable)


def test_error_before_content_leaves_the_stream_unstarted():
    head = TEXT_STREAM.split(b"event: content_block_start")[0]
    translator, chunks = run(head + _error_event("overloaded_error"))
    # Only the error: nothing else was emitted, so the caller may still retry.
    assert list(chunks[0]) == ["error"] and len(chunks) == 1
    assert not translator.started and translator.error is not None


def test_unknown_and_malformed_events_are_ignored():
    translator = StreamDecoder("anthropic", created=1)
    assert translator.feed_event(b'event: brand_new\ndata: {"type":"brand_new"}') == []
    assert translator.feed_event(b"data: not json") == []
    assert translator.feed_event(b": comment") == []
    assert not translator.started


# -- the client's request side ---------------------------------------------------


def test_wire_encodes_the_messages_request_with_the_upstream_model():
    spec = ProviderSpec("anthropic", ANTHROPIC, "http://x/v1", SecretStr("k"), True)
    hi = [{"role": "user", "content": "hi"}]
    payload, injected = AnthropicWire().encode(
        {"model": "m", "messages": hi, "stream": True}, MODEL, spec
    )
    sent = json.loads(payload)
    assert sent["model"] == MODEL and sent["stream"] is True and not injected
    assert "stream_options" not in sent
