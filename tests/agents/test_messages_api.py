"""Agents through Anthropic's Messages API: `agent/<name>` as the model of `/v1/messages`."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx2
import pytest

from tests.agents.conftest import create, history
from tests.fake_upstream import FakeUpstream, Reply
from tests.gateway_server import GatewayServer


@pytest.fixture
def claude_sdk(gw: GatewayServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gw.url, api_key="unused", max_retries=0) as client:
        yield client


def test_agent_turn_as_a_message(
    rest: httpx2.Client, claude_sdk: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    create(rest, system="You are Ada.")
    upstream.script(
        Reply.completion("Hello from Ada.", usage={"prompt_tokens": 9, "completion_tokens": 4})
    )
    message = claude_sdk.messages.create(
        model="agent/ada",
        max_tokens=64,
        system="ignored: the agent has its own",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"X-Conversation-Id": "chat-1"},
    )
    assert message.model == "agent/ada"
    assert [b.text for b in message.content if b.type == "text"] == ["Hello from Ada."]
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (9, 4)
    assert [m["content"] for m in history(rest, "ada", conversation="chat-1")] == [
        "hi",
        "Hello from Ada.",
    ]
    sent = upstream.chat_requests[0].json["messages"]
    assert "You are Ada." in sent[0]["content"] and "ignored" not in str(sent)


def test_agent_turn_streamed_as_message_events(
    rest: httpx2.Client, claude_sdk: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    create(rest)
    upstream.script(
        Reply.completion(
            tool_calls=[
                {
                    "name": "core_memory_append",
                    "arguments": {"label": "human", "content": "likes tea"},
                }
            ]
        ),
        Reply.completion("Noted: tea."),
    )
    with claude_sdk.messages.stream(
        model="agent/ada", max_tokens=64, messages=[{"role": "user", "content": "I like tea"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.endswith("Noted: tea.")
    assert final.stop_reason == "end_turn"
    assert history(rest, "ada")[-1]["content"] == "Noted: tea."


def test_unknown_agent_is_not_found_error(claude_sdk: anthropic.Anthropic) -> None:
    for stream in (False, True):
        with pytest.raises(anthropic.NotFoundError) as caught:
            claude_sdk.messages.create(
                model="agent/nobody",
                max_tokens=8,
                messages=[{"role": "user", "content": "hi"}],
                stream=stream,
            )
        assert caught.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
