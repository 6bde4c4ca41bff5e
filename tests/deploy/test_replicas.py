"""Two `gateway serve` processes behind a real nginx (round-robin), on one PostgreSQL and
one Redis, driven through the balancer with the `openai` SDK: key limits exact, a
budget enforced, a revoked key refused everywhere, one agent conversation serialized,
stored responses found on either replica, and a replica killed mid-run without losing
a stored message."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from gateway.tenants.auth import CACHE_SECONDS
from tests.agents.conftest import PG_ENV, _truncate, postgres_url
from tests.deploy.nginx import NGINX, Nginx
from tests.fake_upstream import FakeUpstream, Reply
from tests.gateway_server import GatewayProcess
from tests.tenants.conftest import REDIS_URL, redis_prefix

__all__ = ["postgres_url", "redis_prefix"]

ADMIN = "admin-key-of-the-replica-test"
# $0.001 per fake reply (7 prompt + 3 completion tokens).
PRICES = {"openai/gpt-4o-mini": {"input_per_mtok": 100.0, "output_per_mtok": 100.0}}

pytestmark = [
    pytest.mark.skipif(not os.environ.get(PG_ENV), reason=f"{PG_ENV} is not set"),
    # Skipped without nginx on a developer's machine, never in CI (.ci/run installs it).
    pytest.mark.skipif(not shutil.which(NGINX) and not os.environ.get("CI"), reason="needs nginx"),
]


class Cluster:
    def __init__(self, replicas: list[GatewayProcess], nginx: Nginx) -> None:
        self.replicas = replicas
        self.nginx = nginx

    def sdk(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.nginx.base_url, api_key=key, max_retries=0)

    def admin(self) -> httpx2.Client:
        return httpx2.Client(
            base_url=self.nginx.url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30
        )


@pytest.fixture
def cluster(
    postgres_url: str | None, redis_prefix: str, upstream: FakeUpstream, tmp_path: Path
) -> Iterator[Cluster]:
    assert postgres_url is not None
    asyncio.run(_truncate(postgres_url))
    env = {
        "OPENAI_API_KEY": "sk-upstream-secret",
        "OPENAI_BASE_URL": upstream.base_url,
        "GATEWAY_DATABASE_URL": postgres_url,
        "GATEWAY_REDIS_URL": REDIS_URL,
        "GATEWAY_REDIS_PREFIX": redis_prefix,
        "GATEWAY_ADMIN_KEY": ADMIN,
        "GATEWAY_PRICES": json.dumps(PRICES),
        "GATEWAY_LOG_LEVEL": "WARNING",
        "GATEWAY_DATA_DIR": str(tmp_path / "data"),
    }
    replicas = [GatewayProcess(env) for _ in range(2)]
    nginx: Nginx | None = None
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda p: p.start(timeout=60), replicas))
        nginx = Nginx(tmp_path / "nginx", [p.port for p in replicas]).start()
        yield Cluster(replicas, nginx)
    finally:
        if nginx is not None:
            nginx.stop()
        for replica in replicas:
            replica.stop()


def _ask(client: openai.OpenAI, model: str = "openai/gpt-4o-mini", **kw: Any) -> tuple[str, str]:
    """("ok" or the error code, the replica that answered)."""
    try:
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": kw.pop("text", "hi")}], **kw
        )
        return "ok", raw.headers["x-upstream"]
    except openai.APIStatusError as exc:
        return str(exc.code), exc.response.headers.get("x-upstream", "")


def test_two_replicas_behind_nginx(cluster: Cluster, upstream: FakeUpstream) -> None:
    admin = cluster.admin()

    # Key limits are exact across the replicas: 4 requests a minute means 4.
    secret = admin.post("/v1/keys", json={"name": "rpm", "rpm": 4}).json()["key"]
    with cluster.sdk(secret) as client:
        results = [_ask(client) for _ in range(6)]
    assert [r[0] for r in results] == ["ok"] * 4 + ["rate_limit_exceeded"] * 2
    assert len({r[1] for r in results}) == 2  # both replicas served

    # A budget: $0.001 a request, $0.0025 a day: the fourth request is refused.
    body = {"name": "budget", "max_budget_usd": 0.0025, "budget_period": "daily"}
    secret = admin.post("/v1/keys", json=body).json()["key"]
    with cluster.sdk(secret) as client:
        assert [_ask(client)[0] for _ in range(5)] == ["ok"] * 3 + ["budget_exceeded"] * 2

    # A revoked key is refused by every replica (each had it cached).
    secret = admin.post("/v1/keys", json={"name": "revoked"}).json()["key"]
    with cluster.sdk(secret) as client:
        assert {_ask(client) for _ in range(4)} == {
            ("ok", f"127.0.0.1:{p.port}") for p in cluster.replicas
        }
        assert admin.delete("/v1/keys/revoked").status_code == 200
        time.sleep(CACHE_SECONDS + 0.1)
        refused = [_ask(client) for _ in range(4)]
    assert {r[0] for r in refused} == {"invalid_api_key"}
    assert len({r[1] for r in refused}) == 2

    # One agent conversation, turns sent to both replicas at once: serialized.
    made = admin.post("/v1/agents", json={"name": "ada", "model": "openai/gpt-4o-mini"})
    assert made.status_code == 201
    upstream.script(*[Reply.delay(0.05, Reply.completion()) for _ in range(6)])
    with cluster.sdk(ADMIN) as client, concurrent.futures.ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(lambda i: _ask(client, "agent/ada", text=f"q{i}")[0], range(6)))
    assert outcomes == ["ok"] * 6
    stored = admin.get("/v1/agents/ada/messages", params={"limit": 500}).json()["data"]
    assert [m["role"] for m in stored] == ["user", "assistant"] * 6
    for question, answer in zip(stored[::2], stored[1::2], strict=True):
        assert answer["content"] == "echo: " + question["content"]
    admin.close()


def test_stored_responses_are_found_on_either_replica(
    cluster: Cluster, upstream: FakeUpstream
) -> None:
    with cluster.sdk(ADMIN) as client:
        first = client.responses.create(model="openai/gpt-4o-mini", input="remember 42")
        # Stored behind the reply: wait until it is there, then every replica has it.
        deadline = time.monotonic() + 30
        while True:
            try:
                client.responses.retrieve(first.id)
                break
            except openai.NotFoundError:
                assert time.monotonic() < deadline, "the response was never stored"
                time.sleep(0.05)
        served = set()
        for _ in range(4):
            raw = client.responses.with_raw_response.retrieve(first.id)
            assert raw.parse().id == first.id
            served.add(raw.headers["x-upstream"])
        assert len(served) == 2
        # A continuation, whichever replica takes it, sends the earlier turn upstream.
        for i in range(2):
            upstream.reset()
            client.responses.create(
                model="openai/gpt-4o-mini", input=f"and then {i}?", previous_response_id=first.id
            )
            [request] = upstream.chat_requests
            sent = str(request.json["messages"])
            assert "remember 42" in sent and f"and then {i}?" in sent


def test_a_replica_killed_mid_run_loses_no_stored_message(
    cluster: Cluster, upstream: FakeUpstream
) -> None:
    turns = 16
    with cluster.admin() as admin:
        made = admin.post("/v1/agents", json={"name": "bo", "model": "openai/gpt-4o-mini"})
        assert made.status_code == 201
    upstream.script(*[Reply.delay(0.1, Reply.completion()) for _ in range(turns * 2)])
    answered: list[str] = []

    def client_loop() -> None:
        # A client as a real one is written: each turn retried with its idempotency key
        # until it is answered.
        with cluster.sdk(ADMIN) as client:
            for i in range(turns):
                while True:
                    outcome, _ = _ask(
                        client,
                        "agent/bo",
                        text=f"q{i}",
                        extra_headers={"Idempotency-Key": f"turn-{i}"},
                    )
                    if outcome == "ok":
                        answered.append(f"q{i}")
                        break
                    time.sleep(0.1)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        running = pool.submit(client_loop)
        while len(answered) < turns // 2:
            time.sleep(0.02)
        victim = cluster.replicas[0].proc
        assert victim is not None
        victim.kill()  # no shutdown: whatever it was doing is cut
        running.result(timeout=120)

    with cluster.admin() as admin:
        stored = admin.get("/v1/agents/bo/messages", params={"limit": 500}).json()["data"]
    questions = [m["content"] for m in stored if m["role"] == "user"]
    assert questions == answered == [f"q{i}" for i in range(turns)]
    assert [m["role"] for m in stored] == ["user", "assistant"] * turns
