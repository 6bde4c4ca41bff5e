"""An `ask_<name>` call the MCP client cancels: the turn goes on, and its model calls
still count in the metrics once they end."""

from __future__ import annotations

import asyncio
import concurrent.futures

import anyio
import httpx2
import pytest

from tests.agents.conftest import create, history
from tests.fake_upstream import FakeUpstream, Reply
from tests.gateway_server import GatewayServer
from tests.mcp_clients import mcp_client
from tests.promtext import Samples


async def _until(condition: object) -> None:
    for _ in range(600):
        if await asyncio.to_thread(condition):  # type: ignore[arg-type]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the gateway never got there")


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_cancelled_ask_still_records_its_model_calls(
    gw: GatewayServer, upstream: FakeUpstream, mode: str
) -> None:
    with httpx2.Client(base_url=gw.url, timeout=30) as rest:
        create(rest)
    gate: concurrent.futures.Future[None] = concurrent.futures.Future()
    upstream.script(Reply.hold(gate, Reply.completion()))
    try:
        async with mcp_client(gw.url, mode=mode) as client:
            async with anyio.create_task_group() as group:
                group.start_soon(client.call_tool, "ask_ada", {"message": "hi"})
                await _until(lambda: len(upstream.chat_requests) == 1)
                group.cancel_scope.cancel()  # the client gives up while the model thinks
    finally:
        gate.set_result(None)

    labels = {"provider": "openai", "model": "gpt-4o-mini"}

    def completion_tokens() -> float:
        samples = Samples(httpx2.get(gw.url + "/metrics").text)
        return samples.sum("gateway_llm_tokens_total", kind="completion", **labels)

    # The fake's usage: 3 completion tokens, counted once the turn's call ends.
    await _until(lambda: completion_tokens() > 0)
    samples = Samples(httpx2.get(gw.url + "/metrics").text)
    assert samples.sum("gateway_llm_requests_total", outcome="success", **labels) == 1
    assert samples.sum("gateway_llm_tokens_total", kind="completion", **labels) == 3
    with httpx2.Client(base_url=gw.url, timeout=30) as rest:
        assert [m["role"] for m in history(rest, "ada")] == ["user", "assistant"]
