"""`/v1/responses` through the official `openai` SDK, against a real gateway and fake upstream."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx2
import openai
import pytest

from gateway.wire.responses import encrypt_reasoning
from tests.fake_upstream import FakeUpstream, Reply
from tests.gateway_server import GatewayServer

MODEL = "openai/gpt-4o-mini"
ADD_TOOL = {
    "type": "function",
    "name": "add",
    "description": "Add two numbers",
    "parameters": {
        "type": "object",
        "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
        "required": ["a", "b"],
    },
}


@pytest.fixture
def client(gw: GatewayServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0) as sdk:
        yield sdk


def test_create_answers_with_a_response_object(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    upstream.script(
        Reply.completion(
            content="Hi there",
            usage={"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
        )
    )
    response = client.responses.create(
        model=MODEL, input="hello", instructions="be kind", temperature=0.5, metadata={"k": "v"}
    )
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.status == "completed" and response.model == MODEL
    assert response.output_text == "Hi there"
    assert response.metadata == {"k": "v"} and response.instructions == "be kind"
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (12, 3)
    assert response.usage.total_tokens == 15
    sent = upstream.chat_requests[-1].json
    assert sent["model"] == "gpt-4o-mini" and sent["temperature"] == 0.5
    assert sent["messages"] == [
        {"role": "system", "content": "be kind"},
        {"role": "user", "content": "hello"},
    ]


def test_stream_delivers_the_typed_events_in_order(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    upstream.script(Reply.completion(content="Hello world", reasoning_content="let me think"))
    with client.responses.stream(model=MODEL, input="hi") as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "response.reasoning_text.delta" in kinds
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "Hello world"
    assert final.output_text == "Hello world"
    reasoning = final.output[0]
    assert reasoning.type == "reasoning" and reasoning.content is not None
    assert reasoning.content[0].text == "let me think"
    assert final.usage is not None and final.usage.total_tokens == 10


def test_a_function_tool_round_trip_with_previous_response_id(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    upstream.script(
        Reply.completion(
            tool_calls=[{"id": "call_1", "name": "add", "arguments": {"a": 2, "b": 3}}]
        ),
        Reply.completion(content="2 + 3 = 5"),
    )
    first = client.responses.create(model=MODEL, input="What is 2 + 3?", tools=[ADD_TOOL])  # type: ignore[list-item]
    call = first.output[0]
    assert call.type == "function_call" and call.name == "add" and call.call_id == "call_1"
    assert json.loads(call.arguments) == {"a": 2, "b": 3}
    second = client.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "5"}],
        tools=[ADD_TOOL],  # type: ignore[list-item]
    )
    assert second.output_text == "2 + 3 = 5" and second.previous_response_id == first.id
    first_sent, second_sent = (r.json for r in upstream.chat_requests[-2:])
    assert first_sent["tools"][0]["function"]["name"] == "add"
    assert second_sent["messages"] == [
        {"role": "user", "content": "What is 2 + 3?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "5"},
    ]


def test_a_streamed_tool_call_arrives_whole(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    args = {"a": 20, "b": 22}
    upstream.script(
        Reply.completion(tool_calls=[{"id": "call_9", "name": "add", "arguments": args}])
    )
    with client.responses.stream(model=MODEL, input="add", tools=[ADD_TOOL]) as stream:  # type: ignore[list-item]
        events = list(stream)
        final = stream.get_final_response()
    deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    assert len(deltas) > 1 and json.loads("".join(deltas)) == args
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert json.loads(done.arguments) == args
    call = final.output[0]
    assert call.type == "function_call" and call.call_id == "call_9"
    assert json.loads(call.arguments) == args


def test_stored_responses_retrieve_list_input_items_and_delete(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    first = client.responses.create(model=MODEL, input="one")
    second = client.responses.create(model=MODEL, input="two", previous_response_id=first.id)
    got = client.responses.retrieve(second.id)
    assert got.id == second.id and got.output_text == "echo: two"
    # The second request continued the first: its input, then its output.
    assert [m["role"] for m in upstream.chat_requests[-1].json["messages"]] == [
        "user",
        "assistant",
        "user",
    ]
    items = client.responses.input_items.list(second.id)
    texts = [item.content[0].text for item in items.data]  # type: ignore[union-attr]
    assert texts == ["two", "echo: one", "one"]  # newest first
    ascending = client.responses.input_items.list(second.id, order="asc", limit=2)
    assert [i.id for i in ascending.data] == [i.id for i in items.data][::-1][:2]
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.retrieve(first.id)
    assert caught.value.code == "not_found"
    # A response that continued the deleted one keeps its context.
    third = client.responses.create(model=MODEL, input="three", previous_response_id=second.id)
    assert third.status == "completed"
    assert len(upstream.chat_requests[-1].json["messages"]) == 5


def test_store_false_keeps_nothing(client: openai.OpenAI) -> None:
    response = client.responses.create(model=MODEL, input="secret", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


def test_errors_come_in_openai_shape(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model=MODEL, input="x", previous_response_id="resp_nope")
    assert caught.value.code == "not_found"
    assert caught.value.body["param"] == "previous_response_id"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(
            model=MODEL, input="x", tools=[{"type": "file_search", "vector_store_ids": ["v"]}]
        )
    assert "file_search" in str(bad.value)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="openai/no-such-model", input="x")
    upstream.script(Reply.error(400, "context too long", code="context_length_exceeded"))
    with pytest.raises(openai.BadRequestError) as upstream_error:
        client.responses.create(model=MODEL, input="x")
    assert upstream_error.value.code == "context_length_exceeded"


def test_a_stream_that_breaks_ends_with_response_failed(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    chunk = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}],
    }
    upstream.script(Reply.sse([chunk, chunk, chunk], cut_after=2))
    with client.responses.stream(model=MODEL, input="hi") as stream:
        events = list(stream)
    assert events[-1].type == "response.failed"
    failed = events[-1].response
    assert failed.status == "failed" and failed.error is not None
    assert failed.error.code == "upstream_unavailable"  # type: ignore[comparison-overlap]
    assert client.responses.retrieve(failed.id).status == "failed"


def test_default_hosted_tools_are_dropped_and_named(
    gw: GatewayServer, upstream: FakeUpstream
) -> None:
    body = {
        "model": MODEL,
        "input": [{"type": "message", "role": "developer", "content": "rules", "id": "msg_d"}],
        "tools": [{"type": "web_search"}, ADD_TOOL],
        "store": False,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "k",
        "client_metadata": {"a": "b"},
        "reasoning": {"summary": "auto"},
    }
    reply = httpx2.post(gw.base_url + "/responses", json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-gateway-dropped-tools"] == "web_search"
    assert [t["function"]["name"] for t in upstream.chat_requests[-1].json["tools"]] == ["add"]


def test_reasoning_goes_back_to_the_provider_from_encrypted_content(
    gw: GatewayServer, upstream: FakeUpstream
) -> None:
    # Codex keeps no state (store false): it sends back the reasoning items we gave it.
    upstream.script(
        Reply.completion(
            reasoning_content="plan", tool_calls=[{"id": "c1", "name": "add", "arguments": "{}"}]
        ),
        Reply.completion(content="done"),
    )
    base = {
        "model": MODEL,
        "store": False,
        "include": ["reasoning.encrypted_content"],
        "tools": [ADD_TOOL],
    }
    first = httpx2.post(gw.base_url + "/responses", json={**base, "input": "go"}, timeout=30).json()
    reasoning = first["output"][0]
    assert reasoning["encrypted_content"] == encrypt_reasoning("plan")
    history = [
        {"role": "user", "content": "go"},
        {k: v for k, v in reasoning.items() if k != "content"},
        first["output"][1],
        {"type": "function_call_output", "call_id": "c1", "output": "0"},
    ]
    second = httpx2.post(gw.base_url + "/responses", json={**base, "input": history}, timeout=30)
    assert second.status_code == 200, second.text
    assistant = upstream.chat_requests[-1].json["messages"][1]
    assert assistant["reasoning_content"] == "plan" and assistant["tool_calls"][0]["id"] == "c1"


def test_bad_requests_are_400s(gw: GatewayServer) -> None:
    for body in (
        b"not json",
        b"[]",
        json.dumps({"model": MODEL}).encode(),
        json.dumps({"model": MODEL, "input": "x", "max_output_tokens": "many"}).encode(),
    ):
        reply = httpx2.post(gw.base_url + "/responses", content=body, timeout=30)
        assert reply.status_code == 400, reply.text
        assert reply.json()["error"]["type"] == "invalid_request_error"
    listing = httpx2.get(gw.base_url + "/responses/resp_x/input_items", params={"limit": 0})
    assert listing.status_code in (400, 404)
