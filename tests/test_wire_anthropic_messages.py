"""Unit tests of the Messages API translators (client side): requests, replies, streams."""

from __future__ import annotations

import json
from typing import Any

import pytest

# The SDK's own stream accumulator: what it builds from our frames is what users get.
from anthropic._models import construct_type
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import RawMessageStreamEvent

from gateway import errors
from gateway.wire.anthropic_messages import (
    IMAGE_TOKENS,
    Traits,
    check_request,
    dropped_tools,
    estimate_tokens,
    to_internal,
)
from gateway.wire.anthropic_messages_reply import error_body, to_message
from gateway.wire.anthropic_messages_sse import MessageStream, error_frame
from gateway.wire.internal import (
    Completion,
    Finish,
    ReasoningDelta,
    Start,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageEvent,
)


def req(**fields: Any) -> dict[str, Any]:
    body = {"model": "kimi/kimi-k2.6", "max_tokens": 100, "messages": [hello()], **fields}
    check_request(body)
    return body


def hello(text: str = "hello") -> dict[str, Any]:
    return {"role": "user", "content": text}


# -- requests -----------------------------------------------------------------------


def test_minimal_request() -> None:
    out = to_internal(req())
    assert out == {
        "model": "kimi/kimi-k2.6",
        "messages": [{"role": "user", "content": "hello"}],
        "max_completion_tokens": 100,
    }


def test_system_blocks_joined_cache_control_and_billing_header_dropped() -> None:
    system = [
        {
            "type": "text",
            "text": "x-anthropic-billing-header: cc_version=2.1.197; cc_entrypoint=cli;",
        },
        {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Be brief."},
    ]
    out = to_internal(req(system=system))
    assert out["messages"][0] == {"role": "system", "content": "You are Claude Code.\n\nBe brief."}
    assert "cache_control" not in json.dumps(out)


def test_system_message_inside_messages_stays_a_system_instruction() -> None:
    """Claude Code's environment message after the first user turn: never a user turn."""
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "list the files"}]},
        {"role": "system", "content": "<env>cwd: /tmp</env>"},
    ]
    out = to_internal(req(system="Main prompt.", messages=messages))
    assert out["messages"] == [
        {"role": "system", "content": "Main prompt.\n\n<env>cwd: /tmp</env>"},
        {"role": "user", "content": "list the files"},
    ]


def test_images_base64_and_url_become_image_parts() -> None:
    content = [
        {"type": "text", "text": "what is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "QUJD"}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/cat.png"}},
    ]
    out = to_internal(req(messages=[{"role": "user", "content": content}]))
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/cat.png"}},
    ]


def test_tool_round_trip_history() -> None:
    messages = [
        hello("weather in Paris?"),
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "I should call the tool.", "signature": "sig"},
                {"type": "text", "text": "Let me check."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "weather",
                    "input": {"city": "Paris"},
                },
                {"type": "tool_use", "id": "toolu_2", "name": "time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": [{"type": "text", "text": "no clock"}],
                    "is_error": True,
                },
                {"type": "text", "text": "and tomorrow?"},
            ],
        },
    ]
    out = to_internal(req(messages=messages))
    assert out["messages"][1] == {
        "role": "assistant",
        "content": "Let me check.",
        "reasoning_content": "I should call the tool.",
        "tool_calls": [
            {
                "id": "toolu_1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
            },
            {"id": "toolu_2", "type": "function", "function": {"name": "time", "arguments": "{}"}},
        ],
    }
    without = to_internal(req(messages=messages), Traits(reasoning_history=False))
    assert "reasoning_content" not in without["messages"][1]
    assert out["messages"][2:] == [
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: no clock"},
        {"role": "user", "content": "and tomorrow?"},
    ]


def test_tool_result_images_follow_as_user_input() -> None:
    image = {"type": "image", "source": {"type": "url", "url": "https://x.test/s.png"}}
    result = {"type": "tool_result", "tool_use_id": "t1", "content": [image]}
    out = to_internal(req(messages=[{"role": "user", "content": [result]}]))
    assert out["messages"] == [
        {"role": "tool", "tool_call_id": "t1", "content": ""},
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "https://x.test/s.png"}}],
        },
    ]


def test_tools_and_tool_choice() -> None:
    tools = [
        {
            "name": "weather",
            "description": "Weather of a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            "cache_control": {"type": "ephemeral"},
        },
        {"name": "Later", "input_schema": {"type": "object"}, "defer_loading": True},
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
    ]
    body = req(tools=tools, tool_choice={"type": "auto", "disable_parallel_tool_use": True})
    out = to_internal(body)
    assert out["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                "description": "Weather of a city",
            },
        },
        {"type": "function", "function": {"name": "Later", "parameters": {"type": "object"}}},
    ]
    assert out["tool_choice"] == "auto"
    assert out["parallel_tool_calls"] is False
    assert dropped_tools(body) == ["web_search"]


@pytest.mark.parametrize(
    ("choice", "traits", "expected"),
    [
        ({"type": "any"}, Traits(), "required"),
        ({"type": "any"}, Traits(tool_choice_required=False), "auto"),
        ({"type": "none"}, Traits(), "none"),
        ({"type": "tool", "name": "w"}, Traits(), {"type": "function", "function": {"name": "w"}}),
    ],
)
def test_tool_choice_mapping(choice: dict[str, Any], traits: Traits, expected: Any) -> None:
    tools = [{"name": "w", "input_schema": {"type": "object"}}]
    assert to_internal(req(tools=tools, tool_choice=choice), traits)["tool_choice"] == expected


def test_tool_choice_without_tools_is_left_out() -> None:
    out = to_internal(req(tool_choice={"type": "any"}))
    assert "tool_choice" not in out and "tools" not in out


def test_sampling_stop_user_and_stream() -> None:
    out = to_internal(
        req(
            temperature=0.2,
            top_p=0.9,
            top_k=5,
            stop_sequences=["END"],
            metadata={"user_id": '{"device_id":"d"}'},
            stream=True,
            context_management={"edits": []},
            output_config={"effort": "high"},
        )
    )
    assert out["temperature"] == 0.2 and out["top_p"] == 0.9 and "top_k" not in out
    assert out["stop"] == ["END"]
    assert out["user"] == '{"device_id":"d"}'
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}
    assert "context_management" not in out and "output_config" not in out


@pytest.mark.parametrize(
    ("thinking", "effort"),
    [
        ({"type": "enabled", "budget_tokens": 1024}, "low"),
        ({"type": "enabled", "budget_tokens": 8000}, "medium"),
        ({"type": "enabled", "budget_tokens": 31999}, "high"),
        ({"type": "adaptive"}, None),
        ({"type": "disabled"}, None),
    ],
)
def test_thinking_maps_to_reasoning_effort_where_supported(
    thinking: dict[str, Any], effort: str | None
) -> None:
    assert (
        to_internal(req(thinking=thinking), Traits(reasoning_effort=True)).get("reasoning_effort")
        == effort
    )
    assert "reasoning_effort" not in to_internal(req(thinking=thinking))


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [hello()]}, "model"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": "hi"}, "messages"),
        ({"model": "m", "messages": [{"role": "tool", "content": "x"}]}, "messages.0.role"),
        ({"model": "m", "messages": [{"role": "user", "content": 3}]}, "messages.0.content"),
        ({"model": "m", "messages": [hello()], "max_tokens": 0}, "max_tokens"),
        ({"model": "m", "messages": [hello()], "max_tokens": True}, "max_tokens"),
        ({"model": "m", "messages": [hello()], "temperature": "hot"}, "temperature"),
        ({"model": "m", "messages": [hello()], "tools": {}}, "tools"),
    ],
)
def test_check_request_names_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(errors.InvalidRequest) as caught:
        check_request(body)
    assert caught.value.param == param


def test_estimate_tokens() -> None:
    internal = {
        "messages": [
            {"role": "system", "content": "x" * 400},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]},
        ],
        "tools": [{"type": "function", "function": {"name": "t"}}],
    }
    tools_chars = len(json.dumps(internal["tools"], separators=(",", ":")))
    expected = 2 * 4 + IMAGE_TOKENS + -(-(400 + tools_chars) // 4)
    assert estimate_tokens(internal) == expected


# -- replies ------------------------------------------------------------------------


def test_to_message_text_thinking_and_tools() -> None:
    completion = Completion(
        id="chatcmpl-1",
        model="kimi-k2.6",
        created=0,
        content="Checking.",
        reasoning="Need the weather.",
        tool_calls=[
            ToolCall("call_1", "weather", '{"city": "Paris"}'),
            ToolCall("c2", "t", "oops"),
        ],
        finish_reason="tool_calls",
        usage=Usage(prompt_tokens=20, completion_tokens=5, cached_tokens=8),
    )
    assert to_message(completion, "kimi/kimi-k2.6") == {
        "id": "msg_chatcmpl-1",
        "type": "message",
        "role": "assistant",
        "model": "kimi/kimi-k2.6",
        "content": [
            {"type": "thinking", "thinking": "Need the weather.", "signature": ""},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "c2", "name": "t", "input": {}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 12,
            "output_tokens": 5,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 8,
        },
    }


@pytest.mark.parametrize(
    ("finish", "stop"),
    [("stop", "end_turn"), ("length", "max_tokens"), ("content_filter", "refusal")],
)
def test_stop_reasons(finish: Any, stop: str) -> None:
    completion = Completion(id="x", model="m", created=0, content="hi", finish_reason=finish)
    assert to_message(completion, "m")["stop_reason"] == stop


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (errors.InvalidJSON("bad"), 400, "invalid_request_error"),
        (errors.AuthenticationError("no key"), 401, "authentication_error"),
        (errors.ModelNotFound("nope"), 404, "not_found_error"),
        (errors.RequestTooLarge("big"), 413, "request_too_large"),
        (errors.UpstreamRateLimited("slow down"), 429, "rate_limit_error"),
        (errors.UpstreamUnavailable("down"), 502, "api_error"),
        (errors.UpstreamTimeout("late"), 504, "api_error"),
    ],
)
def test_error_body(error: errors.GatewayError, status: int, kind: str) -> None:
    assert error.status == status
    assert error_body(error, "req1") == {
        "type": "error",
        "error": {"type": kind, "message": error.message},
        "request_id": "req1",
    }


# -- streams ------------------------------------------------------------------------


def frames(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        name, data = block.split("\n")
        assert name.startswith("event: ") and data.startswith("data: ")
        payload = json.loads(data[6:])
        assert payload["type"] == name[7:]
        out.append((name[7:], payload))
    return out


def run_stream(events: list[Any]) -> tuple[list[tuple[str, dict[str, Any]]], Any]:
    """The frames, and the message the official SDK accumulates from them."""
    stream = MessageStream("kimi/kimi-k2.6")
    raw = b"".join(stream.feed(event) for event in events)
    parsed = frames(raw)
    snapshot = None
    json_bufs: dict[int, bytes] = {}
    for _, data in parsed:
        event = construct_type(type_=RawMessageStreamEvent, value=data)
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=json_bufs)
    return parsed, snapshot


def test_stream_text_and_thinking() -> None:
    parsed, message = run_stream(
        [
            Start("chatcmpl-9", "kimi-k2.6", 0),
            ReasoningDelta("Let me "),
            ReasoningDelta("think."),
            TextDelta("Hel"),
            TextDelta(""),
            TextDelta("lo"),
            UsageEvent(Usage(prompt_tokens=11, completion_tokens=4)),
            Finish("stop"),
        ]
    )
    assert [name for name, _ in parsed] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert message.id == "msg_chatcmpl-9"
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "Let me think."
    assert message.content[1].text == "Hello"
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (11, 4)


def test_stream_tool_call_fragments_become_well_formed_tool_use_blocks() -> None:
    parsed, message = run_stream(
        [
            Start("c", "m", 0),
            TextDelta("Checking."),
            ToolCallDelta(0, id="call_a", name="weather"),
            ToolCallDelta(0, arguments='{"ci'),
            ToolCallDelta(0, arguments='ty": "Paris"}'),
            ToolCallDelta(1, id="call_b", name="time", arguments="{}"),
            ToolCallDelta(0, arguments="late fragment of a closed call"),
            Finish("tool_calls", Usage(prompt_tokens=3, completion_tokens=2)),
        ]
    )
    starts = [data for name, data in parsed if name == "content_block_start"]
    assert [s["content_block"]["type"] for s in starts] == ["text", "tool_use", "tool_use"]
    assert starts[1]["content_block"] == {
        "type": "tool_use",
        "id": "call_a",
        "name": "weather",
        "input": {},
    }
    json_deltas = [
        d["delta"]["partial_json"]
        for n, d in parsed
        if d.get("delta", {}).get("type") == "input_json_delta"
    ]
    assert json_deltas == ['{"ci', 'ty": "Paris"}', "{}"]
    assert message.content[1].input == {"city": "Paris"}
    assert message.content[2].name == "time" and message.content[2].input == {}
    assert message.stop_reason == "tool_use"
    stops = [data["index"] for name, data in parsed if name == "content_block_stop"]
    assert stops == [0, 1, 2]


def test_stream_length_and_error_frame() -> None:
    stream = MessageStream("m")
    stream.feed(Start("c", "m", 0))
    stream.feed(TextDelta("partial"))
    raw = error_frame(errors.UpstreamUnavailable("closed mid-stream"))
    assert frames(raw) == [
        ("error", {"type": "error", "error": {"type": "api_error", "message": "closed mid-stream"}})
    ]
    _, message = run_stream([Start("c", "m", 0), TextDelta("x"), Finish("length")])
    assert message.stop_reason == "max_tokens"
