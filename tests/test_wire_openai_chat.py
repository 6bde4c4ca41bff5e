"""Unit tests of the pure OpenAI chat ⇄ internal translator and the SSE framing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway import errors
from gateway.wire import sse
from gateway.wire.internal import (
    Completion,
    Finish,
    ReasoningDelta,
    Start,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from gateway.wire.openai_chat import (
    ChunkDecoder,
    ChunkEncoder,
    completion_of,
    reply_of,
    usage_of,
)
from tests.support.chunks import chunk


def decode(*chunks: dict[str, Any]) -> list[StreamEvent]:
    decoder = ChunkDecoder("kimi")
    out = [event for c in chunks for event in decoder.feed(c)]
    return out + decoder.end()


def test_reply_decodes_content_reasoning_tool_calls_and_usage():
    reply = {
        "id": "chatcmpl-1",
        "model": "kimi-k2.6",
        "created": 5,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "reasoning_content": "think",
                    "tool_calls": [
                        {
                            "id": "t1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "cached_tokens": 1},
    }
    completion = completion_of(reply)
    assert completion == Completion(
        id="chatcmpl-1",
        model="kimi-k2.6",
        created=5,
        content=None,
        reasoning="think",
        tool_calls=[ToolCall("t1", "f", "{}")],
        finish_reason="tool_calls",
        usage=Usage(3, 2, cached_tokens=1),
    )
    # And back: what an OpenAI client reads is what came.
    again = reply_of(completion)
    assert (
        again["choices"][0]["message"]["tool_calls"] == reply["choices"][0]["message"]["tool_calls"]
    )
    assert again["choices"][0]["message"]["reasoning_content"] == "think"
    assert again["usage"]["prompt_tokens_details"] == {"cached_tokens": 1}


def test_usage_details_openai_style():
    usage = usage_of(
        {
            "prompt_tokens": 10,
            "completion_tokens": 4,
            "prompt_tokens_details": {"cached_tokens": 6},
            "completion_tokens_details": {"reasoning_tokens": 2},
        }
    )
    assert usage == Usage(10, 4, cached_tokens=6, reasoning_tokens=2)
    assert usage_of(None) is None and usage_of("x") is None


def test_stream_reasoning_text_and_finish_with_openai_trailing_usage():
    events = decode(
        chunk(delta={"role": "assistant", "content": ""}),
        chunk(delta={"reasoning_content": "hmm"}),
        chunk(delta={"content": "Hi"}),
        chunk(None, "stop"),
        chunk(choices=[], usage={"prompt_tokens": 5, "completion_tokens": 1}),
    )
    assert events == [
        Start("c1", "gpt-4o-mini", 0),
        ReasoningDelta("hmm"),
        TextDelta("Hi"),
        Finish("stop", Usage(5, 1)),
    ]


def test_stream_with_moonshot_usage_inside_the_finish_choice():
    finish = chunk(None, "stop")
    finish["choices"][0]["usage"] = {"prompt_tokens": 9, "completion_tokens": 3}
    events = decode(chunk(delta={"content": "x"}), finish)
    assert events[-1] == Finish("stop", Usage(9, 3))


def test_fragmented_tool_calls_become_tool_call_deltas():
    first = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "get", "arguments": ""},
    }
    events = decode(
        chunk(delta={"tool_calls": [first]}),
        chunk(delta={"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}),
        chunk(delta={"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        chunk(delta={"tool_calls": [{"index": 1, "id": "call_2", "function": {"name": "put"}}]}),
        chunk(None, "tool_calls"),
    )
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert deltas == [
        ToolCallDelta(0, "call_1", "get", ""),
        ToolCallDelta(0, None, None, '{"a":'),
        ToolCallDelta(0, None, None, "1}"),
        ToolCallDelta(1, "call_2", "put", ""),
    ]
    assert events[-1] == Finish("tool_calls", None)


def test_error_object_in_a_stream_raises_the_mapped_error():
    decoder = ChunkDecoder("kimi")
    decoder.feed(chunk(delta={"content": "x"}))
    with pytest.raises(errors.UpstreamUnavailable) as caught:
        decoder.feed({"error": {"message": "boom", "code": "server_error"}})
    assert caught.value.code == "server_error"


def test_no_finish_reason_no_finish_event():
    assert decode(chunk(delta={"content": "x"})) == [Start("c1", "gpt-4o-mini", 0), TextDelta("x")]


def frames(data: bytes) -> list[Any]:
    return [
        "[DONE]" if f == b"data: [DONE]" else json.loads(f[6:]) for f in data.split(b"\n\n") if f
    ]


@pytest.mark.parametrize("include_usage", [True, False])
def test_encoder_writes_chunks_and_usage_only_when_asked(include_usage):
    encoder = ChunkEncoder(include_usage=include_usage)
    events: list[StreamEvent] = [
        Start("id1", "agent/x", 3),
        TextDelta("Hel"),
        ReasoningDelta("r"),
        ToolCallDelta(0, "t", "f", "{}"),
        Finish("stop", Usage(2, 1)),
    ]
    out = frames(b"".join(encoder.encode(e) for e in events) + encoder.done())
    assert out[-1] == "[DONE]"
    assert all(c["id"] == "id1" and c["model"] == "agent/x" for c in out[:-1])
    deltas = [c["choices"][0]["delta"] for c in out[:-1] if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    call = {"index": 0, "id": "t", "type": "function", "function": {"arguments": "{}", "name": "f"}}
    assert deltas[1:4] == [{"content": "Hel"}, {"reasoning_content": "r"}, {"tool_calls": [call]}]
    usage_chunks = [c for c in out[:-1] if "usage" in c]
    if include_usage:
        assert usage_chunks == [out[-2]] and out[-2]["usage"]["total_tokens"] == 3
    else:
        assert usage_chunks == []
    # No null where OpenAI's schema types a string.
    assert all("system_fingerprint" not in c for c in out[:-1])


def test_event_buffer_joins_split_events_and_normalizes_crlf():
    buffer = sse.EventBuffer()
    assert buffer.feed(b'data: {"a"') == b""
    assert buffer.feed(b": 1}\r\n\r\ndata: [DO") == b'data: {"a": 1}\n\n'
    assert buffer.feed(b"NE]") == b""
    assert buffer.flush() == b"data: [DONE]\n\n"
    assert buffer.flush() == b""


def test_data_and_name_of_an_event():
    assert sse.data_of(b"event: x\ndata: 1\ndata: 2") == b"1\n2"
    assert sse.data_of(b"data:[DONE]") == b"[DONE]"
    assert sse.data_of(b": comment") is None
    assert sse.name_of(b"event: message_start\ndata: {}") == "message_start"
