"""Two `gateway serve` processes on one store: turns of one conversation never interleave."""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

import httpx2
import pytest

from tests.agents.conftest import create, history
from tests.fake_upstream import FakeUpstream, Reply
from tests.gateway_server import GatewayProcess

TURNS = 8


def test_two_processes_serialize_the_turns_of_one_conversation(
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
        # Both start (and migrate a fresh store) at the same time.
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda p: p.start(timeout=60), procs))
        clients = [httpx2.Client(base_url=p.url, timeout=60) for p in procs]
        create(clients[0])
        # Slow replies make the turns overlap if anything let them.
        upstream.script(*[Reply.delay(0.05, Reply.completion()) for _ in range(TURNS)])

        def turn(i: int) -> int:
            response = clients[i % 2].post(
                "/v1/agents/ada/messages", json={"message": f"question {i}"}
            )
            return response.status_code

        with concurrent.futures.ThreadPoolExecutor(TURNS) as pool:
            assert list(pool.map(turn, range(TURNS))) == [200] * TURNS

        stored = history(clients[1], "ada")
        assert [m["role"] for m in stored] == ["user", "assistant"] * TURNS
        for question, answer in zip(stored[::2], stored[1::2], strict=True):
            assert answer["content"] == "echo: " + question["content"]
        # Every upstream call saw whole earlier pairs, then its own question.
        for request in upstream.chat_requests:
            sent = [m["role"] for m in request.json["messages"][1:]]
            assert sent == ["user", "assistant"] * (len(sent) // 2) + ["user"]
        for client in clients:
            client.close()
    finally:
        for proc in procs:
            proc.stop()


def test_a_turn_cut_by_a_crash_resumes_when_the_client_retries(
    backend: str, upstream: FakeUpstream, gateway_config: Path, tmp_path: Path
) -> None:
    env = {
        "OPENAI_API_KEY": "sk-upstream-secret",
        "OPENAI_BASE_URL": upstream.base_url,
        "GATEWAY_DATABASE_URL": backend,
        "GATEWAY_LOG_LEVEL": "WARNING",
    }
    first = GatewayProcess(env, "--config", str(gateway_config)).start(timeout=60)
    try:
        with httpx2.Client(base_url=first.url, timeout=60) as client:
            create(client)
        # The upstream holds the reply until the process is gone.
        upstream.script(Reply.delay(30, Reply.completion(content="never sent")))
        pool = concurrent.futures.ThreadPoolExecutor(1)
        pending = pool.submit(
            httpx2.post, first.url + "/v1/agents/ada/messages", json={"message": "hi"}, timeout=60
        )
        deadline = time.monotonic() + 20
        while not upstream.chat_requests and time.monotonic() < deadline:
            time.sleep(0.02)
        assert first.proc is not None
        first.proc.kill()  # no shutdown: the turn is cut where it stands
        with pytest.raises(httpx2.HTTPError):
            pending.result()
        pool.shutdown()
    finally:
        first.stop()

    with GatewayProcess(env, "--config", str(gateway_config)) as second:
        with httpx2.Client(base_url=second.url, timeout=60) as client:
            assert [m["role"] for m in history(client, "ada")] == ["user"]
            upstream.script(Reply.completion(content="hello again"))
            turn = client.post("/v1/agents/ada/messages", json={"message": "hi"}).json()
            stored = history(client, "ada")
    assert turn["reply"] == "hello again"
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert stored[0]["turn_id"] == stored[1]["turn_id"] == turn["turn_id"]
