"""A saturated agent store answers 503 `store_busy` with `Retry-After`, never a 500."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable

import asyncpg
import httpx2
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from gateway import errors
from gateway.agents.busy import store_errors
from tests.gateway_server import GatewayServer

AGENT = {"name": "ada", "model": "openai/gpt-4o-mini"}


def _assert_busy(response: httpx2.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "store_busy"
    assert int(response.headers["Retry-After"]) >= 1


def test_a_locked_sqlite_store_is_busy_not_broken(
    agent_gateway: Callable[..., GatewayServer], backend: str
) -> None:
    if make_url(backend).get_backend_name() != "sqlite":
        pytest.skip("SQLite's own lock; PostgreSQL's saturation is the next test")
    gw = agent_gateway()
    with httpx2.Client(base_url=gw.url, timeout=60) as client:
        assert client.get("/v1/agents").status_code == 200  # the store exists
        # Another process holds SQLite's write lock past the busy timeout.
        holder = sqlite3.connect(make_url(backend).database or "", isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            _assert_busy(client.post("/v1/agents", json=AGENT))
        finally:
            holder.close()
        assert client.post("/v1/agents", json=AGENT).status_code == 201


async def _waiting_queries(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        query = (
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return int(await conn.fetchval(query))
    finally:
        await conn.close()


async def _until_waiting(dsn: str) -> None:
    """Until some query of the test's database waits on a lock (30 s at most)."""
    for _ in range(600):
        if await _waiting_queries(dsn):
            return
        await asyncio.sleep(0.05)


def test_a_saturated_pool_is_busy_not_broken(
    agent_gateway: Callable[..., GatewayServer], backend: str
) -> None:
    if make_url(backend).get_backend_name() != "postgresql":
        pytest.skip("needs a query that holds a connection: a PostgreSQL table lock")
    gw = agent_gateway({"GATEWAY_DATABASE_POOL_SIZE": "1"})
    dsn = make_url(backend).set(drivername="postgresql").render_as_string(hide_password=False)

    async def scenario() -> None:
        async with httpx2.AsyncClient(base_url=gw.url, timeout=60) as client:
            assert (await client.get("/v1/agents")).status_code == 200
            holder = await asyncpg.connect(dsn)
            try:
                tx = holder.transaction()
                await tx.start()
                await holder.execute("LOCK TABLE agents IN ACCESS EXCLUSIVE MODE")
                # This one takes the pool's only connection and waits on the lock.
                blocked = asyncio.create_task(client.post("/v1/agents", json=AGENT))
                await _until_waiting(dsn)
                _assert_busy(await client.get("/v1/agents"))
                await tx.rollback()
            finally:
                await holder.close()
            assert (await blocked).status_code == 201

    asyncio.run(scenario())


class _TooManyClients(Exception):
    pgcode = "53300"


async def test_a_server_that_refuses_connections_is_busy() -> None:
    with pytest.raises(errors.StoreBusy):
        async with store_errors():
            raise OperationalError("connect", {}, _TooManyClients("too many clients"))
