"""`/metrics` after known traffic: counts, labels, stream timing, in-flight, auth."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import httpx2
import openai
import pytest

from gateway.observability.metrics import OTHER, Metrics
from gateway.providers.base import CallRecord
from tests.fake_upstream import Reply
from tests.promtext import Samples, scrape, wait_for
from tests.support.chunks import chunk

CHAT = "/v1/chat/completions"
LLM = {"provider": "openai", "model": "gpt-4o-mini"}


@pytest.fixture
def client(gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.base_url, api_key="x", max_retries=0) as client:
        yield client


def ask(client: openai.OpenAI, **kwargs: Any) -> Any:
    return client.chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], **kwargs
    )


def test_counts_after_json_stream_retry_and_errors(gateway, upstream, client):
    ask(client)
    chunks = list(ask(client, stream=True))
    # The gateway asked upstream for usage; the client, who did not, gets no usage chunk.
    assert all(c.usage is None for c in chunks)
    upstream.script(Reply.error(429, retry_after=0))
    ask(client)
    upstream.script(Reply.error(400, "prompt too long", code="context_length_exceeded"))
    with pytest.raises(openai.BadRequestError):
        ask(client)
    upstream.script(Reply.error(503), Reply.error(503), Reply.error(503))
    with pytest.raises(openai.InternalServerError):
        ask(client)

    m = scrape(gateway.url)
    requests = "gateway_http_requests_total"
    assert m.sum(requests, method="POST", route=CHAT, status="200") == 3
    assert m.sum(requests, method="POST", route=CHAT, status="400") == 1
    assert m.sum(requests, method="POST", route=CHAT, status="502") == 1
    assert m.sum("gateway_http_request_duration_seconds_count", method="POST", route=CHAT) == 5
    assert m.sum("gateway_overhead_seconds_count", route=CHAT) == 5
    assert m.sum("gateway_llm_requests_total", **LLM, outcome="success") == 3
    assert m.sum("gateway_llm_requests_total", **LLM, outcome="context_length_exceeded") == 1
    assert m.sum("gateway_llm_requests_total", **LLM, outcome="upstream_unavailable") == 1
    assert m.sum("gateway_llm_request_duration_seconds_count", **LLM) == 5
    assert m.sum("gateway_llm_time_to_first_token_seconds_count", **LLM) == 1
    # Three answered calls at the fake's 7 prompt + 3 completion tokens each.
    assert m.sum("gateway_llm_tokens_total", **LLM, kind="prompt") == 21
    assert m.sum("gateway_llm_tokens_total", **LLM, kind="completion") == 9
    assert m.sum("gateway_llm_retries_total", **LLM) == 1 + 2


def test_routes_are_templates_and_rejections_count_under_their_route(make_gateway):
    gw = make_gateway(env={"GATEWAY_API_KEYS": "gk"})
    key = {"Authorization": "Bearer gk"}
    for handle in ("openai/gpt-4o-mini", "openai/gpt-4o"):
        assert httpx2.get(f"{gw.base_url}/models/{handle}", headers=key).status_code == 200
    assert httpx2.get(gw.url + "/no/such/path/42", headers=key).status_code == 404
    assert httpx2.post(gw.url + CHAT, json={}).status_code == 401
    assert httpx2.get(gw.url + CHAT, headers=key).status_code == 405

    m = scrape(gw.url)  # no key needed: Prometheus scrapes without one by default
    requests = "gateway_http_requests_total"
    assert m.sum(requests, method="GET", route="/v1/models/{handle}", status="200") == 2
    assert m.sum(requests, method="GET", route="unmatched", status="404") == 1
    assert m.sum(requests, method="POST", route=CHAT, status="401") == 1
    assert m.sum(requests, method="GET", route=CHAT, status="405") == 1
    assert m.label_values(requests, "route") == {"/v1/models/{handle}", "unmatched", CHAT}


def test_metrics_auth_when_configured(make_gateway):
    gw = make_gateway(env={"GATEWAY_API_KEYS": "gk", "GATEWAY_METRICS_AUTH": "true"})
    assert httpx2.get(gw.url + "/metrics").status_code == 401
    scrape(gw.url, headers={"Authorization": "Bearer gk"})


def test_stream_is_measured_at_its_last_byte(gateway, upstream, client):
    gap = 0.1
    events = [chunk("a"), chunk("b"), chunk("c"), chunk(None, "stop")]
    upstream.script(Reply.sse(events, delay=gap))
    assert "".join(c.choices[0].delta.content or "" for c in ask(client, stream=True)) == "abc"

    m = scrape(gateway.url)
    duration = m.sum("gateway_http_request_duration_seconds_sum", route=CHAT)
    overhead = m.sum("gateway_overhead_seconds_sum", route=CHAT)
    # The upstream's three gaps lie inside the request and count as upstream wait.
    assert duration >= 3 * gap
    assert overhead <= duration - 3 * gap


def test_stream_is_measured_when_the_client_leaves(gateway, upstream):
    # A stream that would run 20 s: the request must be recorded when the client goes.
    upstream.script(Reply.sse([chunk(str(i)) for i in range(100)], delay=0.2))
    body = {
        "model": "openai/gpt-4o-mini",
        "stream": True,
        "messages": [{"role": "user", "content": "x"}],
    }
    with httpx2.stream("POST", gateway.url + CHAT, json=body, timeout=10) as response:
        next(response.iter_bytes())
    m = wait_for(
        gateway.url, lambda m: m.sum("gateway_http_requests_total", route=CHAT) == 1, timeout=10
    )
    assert m.sum("gateway_http_requests_total", route=CHAT, status="200") == 1
    assert m.sum("gateway_llm_time_to_first_token_seconds_count", **LLM) == 1
    assert m.sum("gateway_http_requests_in_flight") == 1  # only the scrape itself


def test_in_flight_gauge_counts_open_requests(gateway, upstream, client):
    release = threading.Event()

    async def held(record: Any) -> None:
        await asyncio.to_thread(release.wait, 10)

    upstream.script(held)
    worker = threading.Thread(target=ask, args=(client,))
    worker.start()
    try:
        busy = wait_for(gateway.url, lambda m: m.sum("gateway_http_requests_in_flight") == 2)
        assert busy.sum("gateway_http_requests_in_flight") == 2  # the held one and the scrape
    finally:
        release.set()
        worker.join(10)
    idle = wait_for(gateway.url, lambda m: m.sum("gateway_http_requests_in_flight") == 1)
    assert idle.sum("gateway_http_requests_in_flight") == 1


def test_unlisted_model_is_counted_under_one_label(gateway, upstream, client):
    # Without a live model list the provider accepts any id; labels must not follow it.
    upstream.script_models(Reply.error(500))
    for model in ("openai/made-up-1", "openai/made-up-2", "openai/gpt-4o-mini"):
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
    m = scrape(gateway.url)
    assert m.label_values("gateway_llm_requests_total", "model") == {OTHER, "gpt-4o-mini"}
    assert m.sum("gateway_llm_requests_total", provider="openai", model=OTHER) == 2
    assert "made-up" not in m.text


def test_metrics_bounds_every_label_it_is_given():
    metrics = Metrics(providers={"openai"}, is_listed=lambda p, m: m == "gpt-4o")
    for i in range(40):
        metrics.record_call(CallRecord("openai", "gpt-4o", outcome=f"code_{i}"))
    metrics.record_call(CallRecord("openai", "gpt-4o", outcome="Not A Code!"))
    metrics.record_call(CallRecord("rogue", "gpt-4o"))
    metrics.observe_http("BREW", "/x", 418, 0.1, 0.1)
    metrics.agent_turn("helper", 3)
    metrics.agent_turn("../etc/passwd bad name", 1)
    metrics.tool_call("ask_helper", "success")
    # A tool's error outcomes are upstream codes too: as bounded as the LLM outcomes.
    for i in range(40):
        metrics.tool_call("chat", f"code_{i}")

    m = Samples(metrics.exposition().decode())
    outcomes = m.label_values("gateway_llm_requests_total", "outcome", provider="openai")
    assert len(outcomes) == 33 and OTHER in outcomes  # 32 distinct codes, then `other`
    assert m.sum("gateway_llm_requests_total", provider="openai", model="gpt-4o") == 41
    assert m.sum("gateway_llm_requests_total", provider=OTHER, model=OTHER) == 1
    assert m.sum("gateway_http_requests_total", method=OTHER, status="418") == 1
    assert m.sum("gateway_agent_steps_total", agent="helper") == 3
    assert m.sum("gateway_agent_turns_total", agent=OTHER) == 1
    assert m.sum("gateway_mcp_tool_calls_total", tool="ask_helper", outcome="success") == 1
    tool_outcomes = m.label_values("gateway_mcp_tool_calls_total", "outcome", tool="chat")
    assert len(tool_outcomes) == 33 and OTHER in tool_outcomes
    assert m.sum("gateway_mcp_tool_calls_total", tool="chat") == 40
