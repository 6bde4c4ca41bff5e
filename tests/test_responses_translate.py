"""The Responses API translators on their own: requests to chat bodies, replies and streams back."""

from __future__ import annotations

import copy
import typing
from typing import Any

import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import BaseModel

from gateway import errors
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
from gateway.wire.responses import chat_body, encrypt_reasoning, parse_request
from gateway.wire.responses_reply import ResponseEvents, finished, skeleton


def _event_classes() -> dict[str, type[BaseModel]]:
    union = typing.get_args(ResponseStreamEvent)[0]
    return {
        typing.get_args(c.model_fields["type"].annotation)[0]: c for c in typing.get_args(union)
    }


EVENTS = _event_classes()


def translate(body: dict[str, Any], history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return chat_body(parse_request(body), history or [])


def test_a_string_input_with_instructions_becomes_system_and_user_messages() -> None:
    chat = translate({"model": "kimi/k2", "input": "hi", "instructions": "be brief"})
    assert chat["model"] == "kimi/k2"
    assert chat["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]
    assert "stream" not in chat


def test_options_are_mapped_and_unknown_fields_ignored() -> None:
    chat = translate(
        {
            "model": "m",
            "input": "x",
            "temperature": 0.2,
            "top_p": 0.9,
            "max_output_tokens": 50,
            "user": "u1",
            "stream": True,
            "text": {"format": {"type": "json_schema", "name": "s", "schema": {"type": "object"}}},
            "reasoning": {"effort": "low", "summary": "auto"},
            "include": ["reasoning.encrypted_content"],
            "prompt_cache_key": "abc",
            "client_metadata": {"x": 1},
            "store": False,
        }
    )
    assert chat["temperature"] == 0.2 and chat["top_p"] == 0.9
    assert chat["max_tokens"] == 50 and chat["user"] == "u1"
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "s", "schema": {"type": "object"}},
    }
    assert chat["reasoning_effort"] == "low"
    assert not {"include", "prompt_cache_key", "client_metadata", "store"} & chat.keys()


def test_json_object_format() -> None:
    chat = translate({"model": "m", "input": "x", "text": {"format": {"type": "json_object"}}})
    assert chat["response_format"] == {"type": "json_object"}


def test_function_tools_translate_and_default_hosted_tools_are_dropped() -> None:
    request = parse_request(
        {
            "model": "m",
            "input": "x",
            "tools": [
                {"type": "function", "name": "add", "parameters": {"type": "object"}},
                {"type": "web_search"},
                {"type": "namespace", "name": "agents", "description": "d", "tools": []},
            ],
            "tool_choice": {"type": "function", "name": "add"},
            "parallel_tool_calls": False,
        }
    )
    assert request.dropped_tools == ["web_search", "namespace"]
    chat = chat_body(request, [])
    assert chat["tools"] == [
        {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}
    ]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "add"}}
    assert chat["parallel_tool_calls"] is False


def test_a_hosted_tool_we_cannot_run_is_a_400_naming_it() -> None:
    with pytest.raises(errors.InvalidRequest) as caught:
        parse_request({"model": "m", "input": "x", "tools": [{"type": "file_search"}]})
    assert "file_search" in caught.value.message
    assert caught.value.param == "tools[0].type"


def test_a_tool_round_trip_history_becomes_assistant_tool_calls_and_tool_messages() -> None:
    # What openai-agents sends: messages without `type`, calls with id and status, outputs.
    items = [
        {"role": "developer", "content": "rules"},
        {"role": "user", "content": [{"type": "input_text", "text": "add 2 and 3"}]},
        {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [],
            "encrypted_content": encrypt_reasoning("think"),
        },
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_1",
            "name": "add",
            "arguments": '{"a":2,"b":3}',
            "status": "completed",
        },
        {"type": "function_call", "call_id": "call_2", "name": "add", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "5"},
        {
            "type": "function_call_output",
            "call_id": "call_2",
            "output": [{"type": "input_text", "text": "0"}],
        },
    ]
    chat = translate({"model": "m", "input": items})
    assert chat["messages"] == [
        {"role": "system", "content": "rules"},
        {"role": "user", "content": "add 2 and 3"},
        {
            "role": "assistant",
            "content": None,
            "reasoning_content": "think",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "add", "arguments": '{"a":2,"b":3}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "add", "arguments": "{}"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "5"},
        {"role": "tool", "tool_call_id": "call_2", "content": "0"},
    ]


def test_assistant_text_then_calls_is_one_message_and_images_become_image_parts() -> None:
    items = [
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "what is this?"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
            ],
        },
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Let me look."}],
        },
        {"type": "function_call", "call_id": "c", "name": "zoom", "arguments": "{}"},
    ]
    messages = translate({"model": "m", "input": items})["messages"]
    assert messages[0]["content"] == [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
    ]
    assert messages[1]["content"] == "Let me look."
    assert [c["id"] for c in messages[1]["tool_calls"]] == ["c"]
    assert len(messages) == 2


def test_history_comes_before_the_new_input() -> None:
    history = [
        *parse_request({"model": "m", "input": "first"}).items,
        {
            "id": "msg_a",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "one", "annotations": []}],
        },
    ]
    chat = translate({"model": "m", "input": "second", "instructions": "sys"}, history)
    assert chat["messages"] == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "one"},
        {"role": "user", "content": "second"},
    ]


def test_normalized_items_get_ids_and_part_lists() -> None:
    items = parse_request(
        {"model": "m", "input": [{"role": "user", "content": "hi", "id": "msg_x"}]}
    ).items
    assert items == [
        {
            "id": "msg_x",
            "type": "message",
            "role": "user",
            "status": "completed",
            "content": [{"type": "input_text", "text": "hi"}],
        }
    ]
    generated = parse_request({"model": "m", "input": "hi"}).items[0]["id"]
    assert generated.startswith("msg_")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": "m"}, "input"),
        ({"model": "m", "input": []}, "input"),
        ({"model": "m", "input": 5}, "input"),
        ({"model": "m", "input": ["x"]}, "input[0]"),
        ({"model": "m", "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        ({"model": "m", "input": [{"type": "computer_call"}]}, "input[0].type"),
        (
            {"model": "m", "input": [{"role": "user", "content": [{"type": "input_file"}]}]},
            "input[0].content[0].type",
        ),
        (
            {"model": "m", "input": [{"type": "function_call_output", "call_id": 1, "output": ""}]},
            "input[0].call_id",
        ),
        ({"model": "m", "input": "x", "temperature": "hot"}, "temperature"),
        ({"model": "m", "input": "x", "stream": "yes"}, "stream"),
        ({"model": "m", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ({"model": "m", "input": "x", "max_output_tokens": True}, "max_output_tokens"),
        ({"model": "m", "input": "x", "tools": [{"type": "function"}]}, "tools[0].name"),
        (
            {
                "model": "m",
                "input": "x",
                "tools": [{"type": "function", "name": "f"}],
                "tool_choice": {"type": "file_search"},
            },
            "tool_choice",
        ),
    ],
)
def test_bad_requests_are_400s_naming_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(errors.InvalidRequest) as caught:
        translate(body)
    assert caught.value.param == param


def test_previous_response_id_alone_needs_no_input() -> None:
    request = parse_request({"model": "m", "previous_response_id": "resp_1"})
    assert request.items == [] and request.previous_response_id == "resp_1"


# -- replies ---------------------------------------------------------------------------


def _response(body: dict[str, Any] | None = None) -> dict[str, Any]:
    request = parse_request({"model": "kimi/k2", "input": "x", **(body or {})})
    return skeleton(request, "resp_1", 1700000000.0)


def test_a_whole_reply_becomes_a_response_object_the_sdk_parses() -> None:
    completion = Completion(
        id="c1",
        model="k2",
        created=1,
        content="Hello",
        reasoning="I think",
        tool_calls=[ToolCall("call_1", "add", '{"a":1}')],
        usage=Usage(prompt_tokens=10, completion_tokens=5, cached_tokens=2, reasoning_tokens=3),
    )
    body = finished(_response({"metadata": {"k": "v"}}), completion, encrypted_reasoning=True)
    response = Response.model_validate(body)
    assert response.id == "resp_1" and response.status == "completed"
    assert response.model == "kimi/k2" and response.metadata == {"k": "v"}
    assert [item.type for item in response.output] == ["reasoning", "message", "function_call"]
    assert response.output_text == "Hello"
    reasoning, _, call = response.output
    assert reasoning.type == "reasoning" and reasoning.content is not None
    assert reasoning.content[0].text == "I think"
    assert reasoning.encrypted_content == encrypt_reasoning("I think")
    assert call.type == "function_call" and call.call_id == "call_1" and call.arguments == '{"a":1}'
    assert response.usage is not None
    assert (
        response.usage.input_tokens,
        response.usage.output_tokens,
        response.usage.total_tokens,
    ) == (10, 5, 15)
    assert response.usage.input_tokens_details.cached_tokens == 2
    assert response.usage.output_tokens_details.reasoning_tokens == 3


def test_a_reply_cut_by_the_token_limit_is_incomplete() -> None:
    completion = Completion(id="c", model="m", created=1, content="Hel", finish_reason="length")
    body = finished(_response(), completion)
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "max_output_tokens"}


def _run(events: list[Any], *, fail: errors.GatewayError | None = None) -> list[dict[str, Any]]:
    stream = ResponseEvents(_response(), encrypted_reasoning=False)
    out = stream.start()
    for event in events:
        out += stream.feed(event)
    out += stream.fail(fail) if fail else stream.finish()
    for event in out:
        # Every event is one the SDK knows, with all the fields it requires. (Error codes
        # are ours, beyond the few the schema lists; see `error_object`.)
        checked = copy.deepcopy(event)
        if isinstance(checked.get("response", {}).get("error"), dict):
            checked["response"]["error"]["code"] = "server_error"
        EVENTS[event["type"]].model_validate(checked)
    return out


def test_stream_events_come_in_the_documented_order_and_are_numbered() -> None:
    out = _run(
        [
            Start("c", "m", 1),
            ReasoningDelta("hm"),
            ReasoningDelta("m"),
            TextDelta("Hel"),
            TextDelta("lo"),
            ToolCallDelta(0, "call_1", "add", ""),
            ToolCallDelta(0, arguments='{"a":'),
            ToolCallDelta(0, arguments="1}"),
            UsageEvent(Usage(4, 2)),
            Finish("tool_calls"),
        ]
    )
    assert [e["sequence_number"] for e in out] == list(range(len(out)))
    assert [e["type"] for e in out] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.reasoning_text.delta",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert out[0]["response"]["status"] == "in_progress" and out[0]["response"]["output"] == []
    final = Response.model_validate(out[-1]["response"])
    assert final.status == "completed" and final.output_text == "Hello"
    assert [i.type for i in final.output] == ["reasoning", "message", "function_call"]
    assert final.output[2].type == "function_call" and final.output[2].arguments == '{"a":1}'
    assert out[19]["arguments"] == '{"a":1}'
    assert out[13]["text"] == "Hello"
    # Items keep their id from added to done, and in the final response.
    added = [e["item"]["id"] for e in out if e["type"] == "response.output_item.added"]
    done = [e["item"]["id"] for e in out if e["type"] == "response.output_item.done"]
    assert added == done == [i.id for i in final.output]
    assert final.usage is not None and final.usage.total_tokens == 6


def test_a_stream_that_breaks_ends_with_response_failed_carrying_the_error() -> None:
    out = _run([Start("c", "m", 1), TextDelta("Hi")], fail=errors.UpstreamUnavailable("gone"))
    assert out[-1]["type"] == "response.failed"
    response = out[-1]["response"]
    assert response["status"] == "failed"
    message = response["output"][0]
    assert message["status"] == "incomplete" and message["content"][0]["text"] == "Hi"
    assert response["error"] == {
        "code": "upstream_unavailable",
        "message": "gone",
        "param": None,
        "type": "upstream_error",
    }


def test_two_tool_calls_stream_as_two_items() -> None:
    out = _run(
        [
            ToolCallDelta(0, "call_a", "f", '{"x":1}'),
            ToolCallDelta(1, "call_b", "g", "{}"),
            Finish("tool_calls", Usage(1, 1)),
        ]
    )
    final = out[-1]["response"]
    assert [(i["call_id"], i["name"], i["arguments"]) for i in final["output"]] == [
        ("call_a", "f", '{"x":1}'),
        ("call_b", "g", "{}"),
    ]
