"""Tenants tests: virtual keys, limits and spend on SQLite and PostgreSQL, with and
without Redis (the machine's shared one, under a key prefix of the test's own)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import openai
import pytest
import redis

from tests.agents.conftest import agent_gateway, backend, postgres_url
from tests.gateway_server import GatewayServer

__all__ = ["agent_gateway", "backend", "postgres_url"]

ADMIN = "admin-secret-for-tests"
REDIS_URL = os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own on the shared Redis; its keys are removed after."""
    prefix = f"agw-test-{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(params=["local", "redis"])
def limits_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """Limits in the process, or in Redis."""
    if request.param == "local":
        return {}
    prefix = request.getfixturevalue("redis_prefix")
    return {"GATEWAY_REDIS_URL": REDIS_URL, "GATEWAY_REDIS_PREFIX": prefix}


@pytest.fixture
def tenant_gateway(
    agent_gateway: Callable[..., GatewayServer],
) -> Callable[..., GatewayServer]:
    """A gateway on this test's store with an admin key (and extra env)."""

    def make(env: dict[str, str] | None = None, **overrides: Any) -> GatewayServer:
        return agent_gateway({"GATEWAY_ADMIN_KEY": ADMIN, **(env or {})}, **overrides)

    return make


@pytest.fixture
def admin_client(tenant_gateway: Callable[..., GatewayServer]) -> Iterator[httpx2.Client]:
    gw = tenant_gateway()
    with httpx2.Client(
        base_url=gw.url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30
    ) as client:
        yield client


@pytest.fixture
def clients() -> Iterator[Callable[..., Any]]:
    """`clients(x)` returns x (an SDK or httpx2 client) and closes it after the test."""
    opened: list[Any] = []

    def keep(client: Any) -> Any:
        opened.append(client)
        return client

    yield keep
    for client in opened:
        client.close()


def new_key(client: httpx2.Client, name: str, **fields: Any) -> dict[str, Any]:
    response = client.post("/v1/keys", json={"name": name, **fields})
    assert response.status_code == 201, response.text
    body = dict(response.json())
    assert body["key"].startswith("sk-gw-")
    return body


def sdk(base_url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=key, max_retries=0)


def chat(client: openai.OpenAI, model: str = "openai/gpt-4o-mini") -> Any:
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
