"""Agent turns end to end: a real gateway, the fake upstream, the `openai` SDK and REST."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable
from typing import Any

import httpx2
import openai
import pytest

from tests.agents.conftest import create, history
from tests.fake_upstream import FakeUpstream, Reply
from tests.gateway_server import GatewayServer
from tests.promtext import Samples


def ask(sdk: openai.OpenAI, text: str, agent: str = "ada", **kw: Any) -> Any:
    return sdk.chat.completions.create(
        model=f"agent/{agent}", messages=[{"role": "user", "content": text}], **kw
    )


def roles(messages: list[dict[str, Any]]) -> list[str]:
    return [m["role"] for m in messages]


def test_tool_loop_edits_memory_visible_over_rest(
    rest: httpx2.Client, sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    create(rest, memory_blocks=[{"label": "human", "value": "", "limit": 100}])
    upstream.script(
        Reply.completion(
            tool_calls=[
                {
                    "name": "core_memory_append",
                    "arguments": {"label": "human", "content": "Name: Grace"},
                }
            ],
            usage={"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        ),
        Reply.completion(
            tool_calls=[
                {
                    "name": "core_memory_replace",
                    "arguments": {
                        "label": "human",
                        "old_content": "Grace",
                        "new_content": "Grace Hopper",
                    },
                }
            ],
            usage={"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25},
        ),
        Reply.completion(
            content="Noted, Grace.",
            usage={"prompt_tokens": 30, "completion_tokens": 4, "total_tokens": 34},
        ),
    )
    reply = ask(sdk, "I am Grace Hopper.")

    assert reply.choices[0].message.content == "Noted, Grace."
    assert reply.choices[0].message.tool_calls is None
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (60, 14)
    agent = rest.get("/v1/agents/ada").json()
    assert agent["memory_blocks"] == [
        {"label": "human", "value": "Name: Grace Hopper", "limit": 100}
    ]
    stored = history(rest, "ada")
    assert roles(stored) == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert stored[2]["content"].startswith("Appended to 'human'")
    # The model saw its memory change between steps, in the system prompt.
    last_system = upstream.chat_requests[2].json["messages"][0]["content"]
    assert "Name: Grace Hopper" in last_system and "18 of 100" in last_system
    # The REST turn reports every message of the turn and the step count.
    upstream.script(Reply.completion(content="Hi again."))
    turn = rest.post("/v1/agents/ada/messages", json={"message": "hello"}).json()
    assert roles(turn["messages"]) == ["user", "assistant"]
    assert turn["usage"]["step_count"] == 1 and turn["reply"] == "Hi again."


def test_tool_errors_go_back_to_the_model(
    rest: httpx2.Client, sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    create(rest, memory_blocks=[{"label": "human", "value": "x" * 8, "limit": 10}])
    upstream.script(
        Reply.completion(
            tool_calls=[
                {
                    "name": "core_memory_append",
                    "arguments": {"label": "human", "content": "too long"},
                },
                {"name": "core_memory_append", "arguments": {"label": "nope", "content": "a"}},
                {"name": "launch_rockets", "arguments": {}},
                {"name": "core_memory_replace", "arguments": "{not json"},
            ]
        ),
        Reply.completion(content="Sorry."),
    )
    assert ask(sdk, "remember a lot").choices[0].message.content == "Sorry."
    results = [
        m["content"] for m in upstream.chat_requests[1].json["messages"] if m["role"] == "tool"
    ]
    assert results[0].startswith("Error: refused") and "limit of 10" in results[0]
    assert "no memory block 'nope'" in results[1] and "human" in results[1]
    assert "no tool named 'launch_rockets'" in results[2]
    assert "not valid JSON" in results[3]
    assert rest.get("/v1/agents/ada").json()["memory_blocks"][0]["value"] == "x" * 8


def test_step_limit_ends_the_turn_with_a_clear_message(
    agent_gateway: Callable[..., GatewayServer], upstream: FakeUpstream
) -> None:
    gw = agent_gateway(agent_max_steps=2)
    call = {"name": "conversation_search", "arguments": {"query": "anything"}}
    upstream.script(Reply.completion(tool_calls=[call]), Reply.completion(tool_calls=[call]))
    with httpx2.Client(base_url=gw.url) as rest:
        create(rest)
        turn = rest.post("/v1/agents/ada/messages", json={"message": "loop"}).json()
    assert turn["usage"]["step_count"] == 2
    assert "step limit" in turn["reply"] and turn["finish_reason"] == "stop"
    assert len(upstream.chat_requests) == 2


def test_history_survives_a_restart(
    agent_gateway: Callable[..., GatewayServer], upstream: FakeUpstream
) -> None:
    first = agent_gateway()
    with httpx2.Client(base_url=first.url) as rest:
        create(rest)
        rest.post("/v1/agents/ada/messages", json={"message": "remember the tulips"})
    first.stop()

    second = agent_gateway()
    with httpx2.Client(base_url=second.url) as rest:
        stored = history(rest, "ada")
        assert [m["content"] for m in stored] == [
            "remember the tulips",
            "echo: remember the tulips",
        ]
        rest.post("/v1/agents/ada/messages", json={"message": "and now?"})
    sent = upstream.chat_requests[-1].json["messages"]
    assert [m["content"] for m in sent[1:]] == [
        "remember the tulips",
        "echo: remember the tulips",
        "and now?",
    ]


def test_concurrent_turns_on_one_agent_stay_whole(
    rest: httpx2.Client, sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    create(rest)
    # Slow replies make the turns overlap if anything let them.
    upstream.script(*[Reply.delay(0.03, Reply.completion()) for _ in range(8)])
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda i: ask(sdk, f"question {i}"), range(8)))
    assert sorted(r.choices[0].message.content for r in replies) == sorted(
        f"echo: question {i}" for i in range(8)
    )
    stored = history(rest, "ada")
    assert roles(stored) == ["user", "assistant"] * 8
    for question, answer in zip(stored[::2], stored[1::2], strict=True):
        assert answer["content"] == "echo: " + question["content"]
        assert answer["turn_id"] == question["turn_id"]
    # Each upstream call saw whole earlier pairs, then its own question.
    for request in upstream.chat_requests:
        sent = roles(request.json["messages"][1:])
        assert sent == ["user", "assistant"] * (len(sent) // 2) + ["user"]


def test_mid_turn_upstream_failure_keeps_history_consistent_and_retry_resumes(
    rest: httpx2.Client, sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    create(rest, memory_blocks=[{"label": "human", "value": "", "limit": 100}])
    append = {"name": "core_memory_append", "arguments": {"label": "human", "content": "likes tea"}}
    upstream.script(Reply.completion(tool_calls=[append]), *[Reply.error(500)] * 3)

    with pytest.raises(openai.APIStatusError) as failure:
        ask(sdk, "I like tea")
    assert failure.value.status_code == 502
    assert failure.value.body["code"] == "upstream_unavailable"  # type: ignore[index]
    # The input and the whole first step are kept; nothing of the failed step.
    assert roles(history(rest, "ada")) == ["user", "assistant", "tool"]

    upstream.script(Reply.completion(content="Tea it is."))
    assert ask(sdk, "I like tea").choices[0].message.content == "Tea it is."
    stored = history(rest, "ada")
    assert roles(stored) == ["user", "assistant", "tool", "assistant"]
    assert len({m["turn_id"] for m in stored}) == 1
    # The memory edit of the first step happened once.
    assert rest.get("/v1/agents/ada").json()["memory_blocks"][0]["value"] == "likes tea"


def test_idempotent_retry_returns_the_stored_answer(
    rest: httpx2.Client, sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    create(rest)
    headers = {"Idempotency-Key": "req-1"}
    first = ask(sdk, "once only", extra_headers=headers)
    again = ask(sdk, "once only", extra_headers=headers)
    assert again.model_dump() == first.model_dump()
    streamed = ask(sdk, "once only", extra_headers=headers, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == (
        "echo: once only"
    )
    assert len(upstream.chat_requests) == 1
    assert roles(history(rest, "ada")) == ["user", "assistant"]

    with pytest.raises(openai.ConflictError) as reused:
        ask(sdk, "something else", extra_headers=headers)
    assert reused.value.body["code"] == "idempotency_key_reused"  # type: ignore[index]


def test_conversations_keep_separate_histories_and_share_memory(
    rest: httpx2.Client, sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    create(rest)
    ask(sdk, "in chat A", extra_headers={"X-Conversation-Id": "a"})
    ask(sdk, "in chat B", extra_headers={"X-OpenWebUI-Chat-Id": "b"})
    ask(sdk, "default chat")
    assert [m["content"] for m in history(rest, "ada", conversation="a")] == [
        "in chat A",
        "echo: in chat A",
    ]
    assert history(rest, "ada", conversation="b")[0]["content"] == "in chat B"
    assert len(history(rest, "ada")) == 2
    assert len(upstream.chat_requests[1].json["messages"]) == 2  # system + its own input


def test_tiny_context_window_trims_and_search_finds_evicted(
    rest: httpx2.Client, sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    create(rest, context_window_limit=900, max_tokens=100, system="Be brief.", memory_blocks=[])
    filler = " lorem ipsum dolor" * 20  # about 90 tokens a message
    ask(sdk, "my locker code is PELICAN" + filler)
    for i in range(6):
        ask(sdk, f"message {i}" + filler)
    sent = upstream.chat_requests[-1].json["messages"]
    assert all("PELICAN" not in (m["content"] or "") for m in sent)
    assert sent[1]["role"] == "user"
    assert "earlier messages of this conversation are out of view" in sent[0]["content"]

    upstream.script(
        Reply.completion(
            tool_calls=[{"name": "conversation_search", "arguments": {"query": "locker CODE"}}]
        ),
        Reply.completion(content="It is PELICAN."),
    )
    assert ask(sdk, "what was my locker code?").choices[0].message.content == "It is PELICAN."
    found = [m for m in upstream.chat_requests[-1].json["messages"] if m["role"] == "tool"]
    assert "my locker code is PELICAN" in found[0]["content"]
    # Nothing was deleted: the whole history is still there.
    assert len(history(rest, "ada")) == 2 * 8 + 2


def test_request_system_messages_are_ignored_and_only_new_input_is_taken(
    rest: httpx2.Client, sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    create(rest, system="You are Ada.")
    sdk.chat.completions.create(
        model="agent/ada",
        messages=[
            {"role": "system", "content": "You are someone else."},
            {"role": "user", "content": "old question"},
            {"role": "assistant", "content": "old answer"},
            {"role": "user", "content": "new one"},
            {"role": "user", "content": [{"type": "text", "text": "and another"}]},
        ],
    )
    sent = upstream.chat_requests[0].json["messages"]
    assert sent[0]["content"].startswith("You are Ada.")
    assert [m["content"] for m in sent[1:]] == [
        "new one",
        [{"type": "text", "text": "and another"}],
    ]


def test_agents_are_listed_as_models(rest: httpx2.Client, sdk: openai.OpenAI) -> None:
    create(rest, name="helper")
    ids = [m.id for m in sdk.models.list()]
    assert "agent/helper" in ids and "openai/gpt-4o-mini" in ids
    assert sdk.models.retrieve("agent/helper").id == "agent/helper"
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("agent/nobody")


def test_default_model_is_used_when_none_is_given(
    agent_gateway: Callable[..., GatewayServer],
) -> None:
    gw = agent_gateway(default_model="openai/gpt-4o")
    with httpx2.Client(base_url=gw.url) as rest:
        response = rest.post("/v1/agents", json={"name": "plain"})
        assert response.status_code == 201 and response.json()["model"] == "openai/gpt-4o"


def test_agent_deleted_mid_turn_ends_the_turn_with_not_found(
    gw: GatewayServer, rest: httpx2.Client, sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    create(rest)

    def delete_then_answer(record: Any) -> Reply:
        assert httpx2.delete(f"{gw.url}/v1/agents/ada").status_code == 200
        return Reply.completion(content="too late")

    upstream.script(delete_then_answer)
    with pytest.raises(openai.NotFoundError) as gone:
        ask(sdk, "hello?")
    assert gone.value.body["code"] == "model_not_found"  # type: ignore[index]
    assert rest.get("/v1/agents").json()["data"] == []


def test_kimi_thinking_model_gets_its_reasoning_back_with_tool_calls(
    agent_gateway: Callable[..., GatewayServer], upstream: FakeUpstream
) -> None:
    upstream.models = ["kimi-k2.6"]
    gw = agent_gateway({"KIMI_API_KEY": "sk-kimi", "KIMI_BASE_URL": upstream.base_url})
    with httpx2.Client(base_url=gw.url, timeout=30) as rest:
        create(rest, model="kimi/kimi-k2.6", memory_blocks=[{"label": "human", "value": ""}])
    call = {"name": "core_memory_append", "arguments": {"label": "human", "content": "tea"}}
    upstream.script(
        Reply.completion(tool_calls=[call], reasoning_content="Store the preference."),
        Reply.completion(content="Noted."),
    )
    with openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0) as sdk:
        assert ask(sdk, "I like tea.").choices[0].message.content == "Noted."
    # Moonshot refuses a thinking model's history whose tool-call messages lack it.
    second = upstream.chat_requests[1].json["messages"]
    assistant = next(m for m in second if m["role"] == "assistant")
    assert assistant["tool_calls"] and assistant["reasoning_content"] == "Store the preference."


def test_one_idempotency_key_at_once_in_several_conversations_is_a_conflict(
    rest: httpx2.Client, sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    create(rest)
    # Slow replies keep the turns' first transactions close together.
    upstream.script(*[Reply.delay(0.2, Reply.completion()) for _ in range(8)])

    def attempt(i: int) -> int | str:
        headers = {"Idempotency-Key": "shared", "X-Conversation-Id": f"c-{i}"}
        try:
            ask(sdk, "same words", extra_headers=headers)
        except openai.APIStatusError as exc:
            return f"{exc.status_code} {exc.body['code']}"  # type: ignore[index]
        return 200

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(attempt, range(8)))
    assert sorted(outcomes, key=str) == [200] + ["409 idempotency_key_reused"] * 7


def _in_flight(gw: GatewayServer) -> float:
    return Samples(httpx2.get(gw.url + "/metrics").text).sum("gateway_http_requests_in_flight")


def test_a_queued_turn_runs_with_the_agent_as_it_is_when_it_starts(
    gw: GatewayServer, rest: httpx2.Client, sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    create(rest, system="You are the old Ada.")
    gate: concurrent.futures.Future[None] = concurrent.futures.Future()
    upstream.script(Reply.hold(gate, Reply.completion()))
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        try:
            first = pool.submit(ask, sdk, "first")
            _until(lambda: len(upstream.chat_requests) == 1)
            # The second turn arrives, reads the agent, and queues behind the first.
            second = pool.submit(ask, sdk, "second")
            _until(lambda: _in_flight(gw) >= 3)  # both turns and this scrape
            patched = rest.patch("/v1/agents/ada", json={"system": "You are the new Ada."})
            assert patched.status_code == 200, patched.text
        finally:
            gate.set_result(None)
        first.result(), second.result()
    systems = [r.json["messages"][0]["content"] for r in upstream.chat_requests]
    assert "old Ada" in systems[0]
    assert "new Ada" in systems[1]


def _until(condition: Callable[[], bool]) -> None:
    for _ in range(600):
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("the gateway never got there")
