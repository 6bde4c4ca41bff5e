"""Agent tests run on SQLite and, where `GATEWAY_TEST_POSTGRES_URL` is set, on PostgreSQL.

A test that takes the `backend` fixture runs once per backend. PostgreSQL gets a fresh
database per test session (created next to the one the URL names, dropped at the end),
so parallel CI runs and reruns never meet; every test starts from empty tables. If the
variable is set but the server cannot be reached, the PostgreSQL tests fail: they are
never skipped by accident.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx2
import openai
import pytest
from sqlalchemy.engine import make_url

from tests.gateway_server import GatewayServer

PG_ENV = "GATEWAY_TEST_POSTGRES_URL"
TABLES = (
    "responses, idempotency_keys, messages, turns, conversations, memory_blocks, agents, "
    "usage, api_keys"
)


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(url), timeout=10)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str | None]:
    """A database of this session's own on the server `GATEWAY_TEST_POSTGRES_URL` names."""
    base = os.environ.get(PG_ENV)
    if not base:
        yield None
        return
    name = f"agw_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        asyncio.run(_admin(base, f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"{PG_ENV}={base} is set but PostgreSQL is not usable: {exc!r}")
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        asyncio.run(_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The agent store's URL for this test, on empty tables."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'agents.db'}"
    postgres_url: str | None = request.getfixturevalue("postgres_url")
    if postgres_url is None:
        pytest.skip(f"{PG_ENV} is not set")
    asyncio.run(_truncate(postgres_url))
    return postgres_url


async def _truncate(url: str) -> None:
    try:
        await _admin(url, f"TRUNCATE {TABLES} CASCADE")
    except asyncpg.UndefinedTableError:
        pass  # the first gateway of the session has not migrated yet


@pytest.fixture
def agent_gateway(
    make_gateway: Callable[..., GatewayServer], backend: str
) -> Callable[..., GatewayServer]:
    """Start a gateway on this test's store; extra env and settings as for make_gateway."""

    def make(env: dict[str, str] | None = None, **overrides: Any) -> GatewayServer:
        return make_gateway({"GATEWAY_DATABASE_URL": backend, **(env or {})}, **overrides)

    return make


@pytest.fixture
def gw(agent_gateway: Callable[..., GatewayServer]) -> GatewayServer:
    return agent_gateway()


@pytest.fixture
def rest(gw: GatewayServer) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=gw.url, timeout=30) as client:
        yield client


@pytest.fixture
def sdk(gw: GatewayServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0) as client:
        yield client


def create(client: httpx2.Client, name: str = "ada", **fields: Any) -> dict[str, Any]:
    fields.setdefault("model", "openai/gpt-4o-mini")
    response = client.post("/v1/agents", json={"name": name, **fields})
    assert response.status_code == 201, response.text
    return dict(response.json())


def history(client: httpx2.Client, ref: str, **params: Any) -> list[dict[str, Any]]:
    response = client.get(f"/v1/agents/{ref}/messages", params={"limit": 500, **params})
    assert response.status_code == 200, response.text
    return list(response.json()["data"])
