"""Agent turns waiting on a model hold no database connection.

500 turns at once on two `gateway serve` processes with a pool of 5 each, against a
model that answers only when the test lets it: every turn reaches the model, the
store keeps answering reads meanwhile, PostgreSQL sees no more than pool + 1
connections per process, and every turn then succeeds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import resource
import time
from pathlib import Path

import asyncpg
import httpx2
import openai
import pytest
from sqlalchemy.engine import make_url

from tests.agents.conftest import create
from tests.fake_upstream import FakeUpstream, Reply
from tests.gateway_server import GatewayProcess

TURNS = 500
POOL = 5
AGENTS = 8
# How long all turns may take to reach the model: generous, as the machine is shared.
REACH_DEADLINE = 180


@pytest.fixture(autouse=True)
def _enough_files() -> None:
    """Each turn is two sockets in this process (the client's, the fake upstream's)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 8192)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


async def _connections(url: str) -> int:
    dsn = make_url(url).set(drivername="postgresql")
    conn = await asyncpg.connect(dsn.render_as_string(hide_password=False))
    try:
        query = "SELECT count(*) FROM pg_stat_activity WHERE datname = $1"
        return int(await conn.fetchval(query, dsn.database)) - 1  # not this one
    finally:
        await conn.close()


def _wait_for_requests(upstream: FakeUpstream, count: int) -> int:
    deadline = time.monotonic() + REACH_DEADLINE
    while time.monotonic() < deadline:
        seen = len(upstream.chat_requests)
        if seen >= count:
            return seen
        time.sleep(0.1)
    return len(upstream.chat_requests)


async def _turn(client: openai.AsyncOpenAI, n: int) -> str:
    reply = await client.chat.completions.create(
        model=f"agent/storm-{n % AGENTS}",
        messages=[{"role": "user", "content": f"question {n}"}],
        extra_headers={"X-Conversation-Id": f"c-{n}"},
    )
    return reply.choices[0].message.content or ""


def test_turns_waiting_on_the_model_leave_the_store_free(
    backend: str, upstream: FakeUpstream, gateway_config: Path, tmp_path: Path
) -> None:
    gate: concurrent.futures.Future[None] = concurrent.futures.Future()
    upstream.script(*[Reply.hold(gate, Reply.completion()) for _ in range(TURNS)])
    env = {
        "OPENAI_API_KEY": "sk-upstream-secret",
        "OPENAI_BASE_URL": upstream.base_url,
        "GATEWAY_DATABASE_URL": backend,
        "GATEWAY_DATABASE_POOL_SIZE": str(POOL),
        "GATEWAY_DATA_DIR": str(tmp_path / "data"),
        "GATEWAY_LOG_LEVEL": "WARNING",
    }
    procs = [GatewayProcess(env, "--config", str(gateway_config)) for _ in range(2)]
    try:
        for proc in procs:  # one after the other: the first creates the schema
            proc.start(timeout=60)
        with httpx2.Client(base_url=procs[0].url, timeout=60) as rest:
            for i in range(AGENTS):
                create(rest, f"storm-{i}")

        async def storm() -> list[str | BaseException]:
            clients = [
                openai.AsyncOpenAI(base_url=p.base_url, api_key="unused", max_retries=0)
                for p in procs
            ]
            turns = [asyncio.create_task(_turn(clients[n % 2], n)) for n in range(TURNS)]
            try:
                seen = await asyncio.to_thread(_wait_for_requests, upstream, TURNS)
                assert seen == TURNS, f"only {seen} of {TURNS} turns reached the model"
                # Every turn now waits on the model; the store answers everyone else.
                async with httpx2.AsyncClient(timeout=60) as reader:
                    for proc in procs:
                        listed = await reader.get(proc.url + "/v1/agents")
                        assert listed.status_code == 200, listed.text
                        assert len(listed.json()["data"]) == AGENTS
                        page = await reader.get(proc.url + "/v1/agents/storm-0/messages")
                        assert page.status_code == 200, page.text
                if make_url(backend).get_backend_name() == "postgresql":
                    # The pool, plus the one connection that holds the turns' locks.
                    assert await _connections(backend) <= 2 * (POOL + 1)
            finally:
                gate.set_result(None)
                done = await asyncio.gather(*turns, return_exceptions=True)
                for client in clients:
                    await client.close()
            return done

        results = asyncio.run(storm())
        failed = [r for r in results if isinstance(r, BaseException)]
        assert not failed, f"{len(failed)} turns failed, e.g. {failed[0]!r}"
        assert results == [f"echo: question {n}" for n in range(TURNS)]
    finally:
        if not gate.done():
            gate.set_result(None)
        for proc in procs:
            proc.stop()
