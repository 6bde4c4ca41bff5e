"""`agent/<name>` as the model of `/v1/responses`: the turn runs on the agent, and
`previous_response_id` or `X-Conversation-Id` picks the conversation."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import openai
import pytest

from tests.agents.conftest import create, history
from tests.fake_upstream import FakeUpstream, Reply
from tests.gateway_server import GatewayServer


@pytest.fixture
def client(gw: GatewayServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0) as sdk:
        yield sdk


def test_a_follow_up_continues_the_agents_conversation(
    client: openai.OpenAI, rest: httpx2.Client, upstream: FakeUpstream
) -> None:
    create(rest, "ada", system="You are Ada.")
    first = client.responses.create(model="agent/ada", input="my name is Bob")
    assert first.output_text == "echo: my name is Bob" and first.model == "agent/ada"
    assert first.usage is not None and first.usage.total_tokens > 0
    second = client.responses.create(
        model="agent/ada", input="what is my name?", previous_response_id=first.id
    )
    assert second.output_text == "echo: what is my name?"
    # The agent's own history carried the first exchange; the request sent only new input.
    sent = upstream.chat_requests[-1].json["messages"]
    assert sent[0]["role"] == "system" and "You are Ada." in sent[0]["content"]
    assert [m["content"] for m in sent[1:]] == [
        "my name is Bob",
        "echo: my name is Bob",
        "what is my name?",
    ]
    # The conversation is named after the first response.
    stored = history(rest, "ada", conversation=first.id)
    assert [m["role"] for m in stored] == ["user", "assistant"] * 2
    assert client.responses.retrieve(second.id).output_text == "echo: what is my name?"


def test_the_conversation_header_picks_the_conversation(
    gw: GatewayServer, rest: httpx2.Client, upstream: FakeUpstream
) -> None:
    create(rest, "ada")
    for text in ("one", "two"):
        reply = httpx2.post(
            gw.base_url + "/responses",
            json={"model": "agent/ada", "input": text},
            headers={"X-Conversation-Id": "chat-7"},
            timeout=30,
        )
        assert reply.status_code == 200, reply.text
    assert [m["content"] for m in history(rest, "ada", conversation="chat-7")] == [
        "one",
        "echo: one",
        "two",
        "echo: two",
    ]


def test_a_streamed_agent_turn(
    client: openai.OpenAI, rest: httpx2.Client, upstream: FakeUpstream
) -> None:
    create(rest, "ada")
    upstream.script(Reply.completion(content="streamed answer"))
    with client.responses.stream(model="agent/ada", input="hi") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert final.output_text == "streamed answer"
    follow = client.responses.create(
        model="agent/ada", input="again", previous_response_id=final.id
    )
    assert follow.output_text == "echo: again"
    assert len(upstream.chat_requests[-1].json["messages"]) == 4  # system, 2 earlier, new


def test_an_unknown_agent_is_a_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="agent/nobody", input="hi")
