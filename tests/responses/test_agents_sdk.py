"""The OpenAI Agents SDK (`openai-agents`) on `/v1/responses`: an agent with a function tool.

The SDK sends the whole conversation every turn (messages without `type`, then its
`function_call` items with `id` and `status`, then `function_call_output` items) and
no `previous_response_id`.
"""

from __future__ import annotations

import json

import openai
from agents import Agent, OpenAIResponsesModel, RunConfig, Runner, function_tool

from tests.fake_upstream import FakeUpstream, Reply
from tests.gateway_server import GatewayServer


@function_tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


async def test_an_agent_with_a_function_tool_runs_through_the_gateway(
    gw: GatewayServer, upstream: FakeUpstream
) -> None:
    upstream.script(
        Reply.completion(
            reasoning_content="I should add.",
            tool_calls=[{"id": "call_add", "name": "add", "arguments": {"a": 19, "b": 23}}],
        ),
        Reply.completion(content="19 + 23 = 42"),
    )
    client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
    agent = Agent(
        name="calculator",
        instructions="Use the add tool for sums.",
        tools=[add],
        model=OpenAIResponsesModel(model="openai/gpt-4o-mini", openai_client=client),
    )
    try:
        result = await Runner.run(
            agent, "What is 19 + 23?", run_config=RunConfig(tracing_disabled=True)
        )
    finally:
        await client.close()
    assert result.final_output == "19 + 23 = 42"
    first, second = (r.json for r in upstream.chat_requests[-2:])
    assert first["messages"][0] == {"role": "system", "content": "Use the add tool for sums."}
    assert first["tools"][0]["function"]["name"] == "add"
    # The second turn carried the tool call, its reasoning and the tool's result.
    assistant, tool = second["messages"][2:]
    assert assistant["reasoning_content"] == "I should add."
    assert assistant["tool_calls"][0]["id"] == "call_add"
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"a": 19, "b": 23}
    assert tool == {"role": "tool", "tool_call_id": "call_add", "content": "42"}


async def test_a_streamed_agent_run(gw: GatewayServer, upstream: FakeUpstream) -> None:
    upstream.script(
        Reply.completion(
            tool_calls=[{"id": "call_s", "name": "add", "arguments": {"a": 1, "b": 1}}]
        ),
        Reply.completion(content="It is 2."),
    )
    client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
    agent = Agent(
        name="calculator",
        tools=[add],
        model=OpenAIResponsesModel(model="openai/gpt-4o-mini", openai_client=client),
    )
    try:
        run = Runner.run_streamed(agent, "1 + 1?", run_config=RunConfig(tracing_disabled=True))
        kinds = [event.type async for event in run.stream_events()]
    finally:
        await client.close()
    assert run.final_output == "It is 2."
    assert "raw_response_event" in kinds
    assert upstream.chat_requests[-1].json["messages"][-1]["content"] == "2"
