"""Stored responses across two `gateway serve` processes on one store (two replicas)."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import openai
import pytest

from tests.fake_upstream import FakeUpstream
from tests.gateway_server import GatewayProcess

MODEL = "openai/gpt-4o-mini"


def test_a_response_made_on_one_process_continues_on_the_other(
    backend: str, upstream: FakeUpstream, gateway_config: Path, tmp_path: Path
) -> None:
    env = {
        "OPENAI_API_KEY": "sk-upstream-secret",
        "OPENAI_BASE_URL": upstream.base_url,
        "GATEWAY_DATABASE_URL": backend,
        "GATEWAY_DATA_DIR": str(tmp_path / "data"),
        "GATEWAY_LOG_LEVEL": "WARNING",
    }
    procs = [GatewayProcess(env, "--config", str(gateway_config)) for _ in range(2)]
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda p: p.start(timeout=60), procs))
        a, b = (openai.OpenAI(base_url=p.base_url, api_key="unused", max_retries=0) for p in procs)
        first = a.responses.create(model=MODEL, input="one")
        # Streamed on the other process, continuing the first.
        with b.responses.stream(model=MODEL, input="two", previous_response_id=first.id) as stream:
            second = stream.get_final_response()
        third = a.responses.create(model=MODEL, input="three", previous_response_id=second.id)
        assert third.output_text == "echo: three"
        sent = [m["content"] for m in upstream.chat_requests[-1].json["messages"]]
        assert sent == ["one", "echo: one", "two", "echo: two", "three"]
        assert b.responses.retrieve(third.id).output_text == "echo: three"
        assert len(b.responses.input_items.list(third.id).data) == 5
        a.responses.delete(second.id)
        with pytest.raises(openai.NotFoundError):
            b.responses.retrieve(second.id)
        a.close()
        b.close()
    finally:
        for proc in procs:
            proc.stop()
