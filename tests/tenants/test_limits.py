"""A key's rpm, tpm and budget, in the process and in Redis; usage and cost reports."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx2
import openai
import pytest

from gateway.tenants.spend import day_of
from tests.gateway_server import GatewayServer
from tests.tenants.conftest import ADMIN, chat, new_key, sdk

# Each fake reply uses 7 prompt and 3 completion tokens: at these prices, $0.001 each.
PRICES = {"openai/gpt-4o-mini": {"input_per_mtok": 100.0, "output_per_mtok": 100.0}}


def _admin(gw: GatewayServer, clients: Callable[..., Any]) -> httpx2.Client:
    return clients(httpx2.Client(base_url=gw.url, headers={"Authorization": f"Bearer {ADMIN}"}))


def _outcomes(client: openai.OpenAI, n: int) -> list[str]:
    out = []
    for _ in range(n):
        try:
            chat(client)
            out.append("ok")
        except openai.RateLimitError as exc:
            out.append(str(exc.code))
            assert exc.response.headers.get("retry-after") or exc.code == "budget_exceeded"
    return out


def test_rpm_and_tpm(
    tenant_gateway: Callable[..., GatewayServer],
    limits_env: dict[str, str],
    clients: Callable[..., Any],
) -> None:
    gw = tenant_gateway(limits_env)
    admin = _admin(gw, clients)
    by_requests = clients(sdk(gw.base_url, new_key(admin, "rpm", rpm=3)["key"]))
    assert _outcomes(by_requests, 5) == ["ok"] * 3 + ["rate_limit_exceeded"] * 2
    # 25 tokens a minute: the third reply takes the bucket into debt, the fourth waits.
    by_tokens = clients(sdk(gw.base_url, new_key(admin, "tpm", tpm=25)["key"]))
    assert _outcomes(by_tokens, 4) == ["ok"] * 3 + ["rate_limit_exceeded"]
    with pytest.raises(openai.RateLimitError) as limited:
        chat(by_tokens)
    assert "tokens per minute" in limited.value.message
    assert int(limited.value.response.headers["retry-after"]) >= 1
    # Another key is not affected.
    assert _outcomes(clients(sdk(gw.base_url, new_key(admin, "free")["key"])), 4) == ["ok"] * 4


def test_budget_is_enforced_and_survives_a_restart(
    tenant_gateway: Callable[..., GatewayServer],
    limits_env: dict[str, str],
    clients: Callable[..., Any],
) -> None:
    env = {**limits_env, "GATEWAY_PRICES": json.dumps(PRICES)}
    gw = tenant_gateway(env)
    admin = _admin(gw, clients)
    secret = new_key(admin, "capped", max_budget_usd=0.0025, budget_period="monthly")["key"]
    client = clients(sdk(gw.base_url, secret))
    # $0.001 a request: the third reaches $0.003, past the budget; the fourth is refused.
    assert _outcomes(client, 4) == ["ok"] * 3 + ["budget_exceeded"]
    with pytest.raises(openai.RateLimitError) as refused:
        chat(client)
    assert refused.value.status_code == 429
    assert refused.value.body["type"] == "insufficient_quota"  # type: ignore[index]
    assert "this month" in refused.value.message
    gw.stop()  # the spend reaches the store at shutdown

    again = tenant_gateway(env)
    with pytest.raises(openai.RateLimitError, match="budget"):
        chat(clients(sdk(again.base_url, secret)))
    # The admin raises the budget: the key works again at once on this replica.
    assert _admin(again, clients).patch("/v1/keys/capped", json={"max_budget_usd": 1}).is_success
    assert chat(clients(sdk(again.base_url, secret))).choices


def test_usage_by_key_model_and_day(
    tenant_gateway: Callable[..., GatewayServer], clients: Callable[..., Any]
) -> None:
    gw = tenant_gateway({"GATEWAY_PRICES": json.dumps(PRICES)})
    admin = _admin(gw, clients)
    alice = new_key(admin, "alice")
    bob = new_key(admin, "bob")
    for _ in range(2):
        chat(clients(sdk(gw.base_url, alice["key"])))
    chat(clients(sdk(gw.base_url, bob["key"])))
    chat(clients(sdk(gw.base_url, bob["key"])), "openai/gpt-4o")

    by_key = admin.get("/v1/usage", params={"group_by": "key"}).json()
    rows = {r["key_name"]: r for r in by_key["data"]}
    assert rows["alice"]["requests"] == 2 and rows["alice"]["total_tokens"] == 20
    assert rows["alice"]["cost_usd"] == pytest.approx(0.002)
    # gpt-4o at its built-in price: $2.50 in and $10 out per million tokens.
    gpt_4o = (7 * 2.50 + 3 * 10.00) / 1e6
    assert rows["bob"]["requests"] == 2
    assert rows["bob"]["cost_usd"] == pytest.approx(0.001 + gpt_4o)
    assert by_key["total"]["requests"] == 4

    by_model = admin.get("/v1/usage", params={"group_by": "model"}).json()["data"]
    assert {r["model"]: r["requests"] for r in by_model} == {
        "openai/gpt-4o": 1,
        "openai/gpt-4o-mini": 3,
    }
    today = day_of(time.time())
    by_day = admin.get("/v1/usage", params={"start": today, "end": today}).json()["data"]
    assert [(r["day"], r["requests"]) for r in by_day] == [(today, 4)]

    # A virtual key reads its own usage only.
    own = clients(httpx2.Client(base_url=gw.url, headers={"x-api-key": bob["key"]}))
    mine = own.get("/v1/usage", params={"group_by": "key"}).json()["data"]
    assert [(r["key_id"], r["requests"]) for r in mine] == [(bob["id"], 2)]
    other = own.get("/v1/usage", params={"key_id": alice["id"]})
    assert other.status_code == 403
    bad = admin.get("/v1/usage", params={"group_by": "week"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "group_by"
    bad = admin.get("/v1/usage", params={"start": "yesterday"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "start"


def test_limits_hold_across_two_replicas_sharing_redis(
    tenant_gateway: Callable[..., GatewayServer],
    redis_prefix: str,
    clients: Callable[..., Any],
) -> None:
    from tests.tenants.conftest import REDIS_URL

    env = {
        "GATEWAY_REDIS_URL": REDIS_URL,
        "GATEWAY_REDIS_PREFIX": redis_prefix,
        "GATEWAY_RATE_LIMIT_RPM": "5",
    }
    first, second = tenant_gateway(env), tenant_gateway(env)
    secret = new_key(_admin(first, clients), "shared", rpm=4)["key"]
    on_first = clients(sdk(first.base_url, secret))
    on_second = clients(sdk(second.base_url, secret))
    outcomes = [_outcomes(client, 1)[0] for client in [on_first, on_second] * 3]
    assert outcomes == ["ok"] * 4 + ["rate_limit_exceeded"] * 2
    # The per-address limit (5 a minute per key) is shared too: the admin's one request
    # above and four here use it up on both replicas.
    admin_second = clients(
        httpx2.Client(base_url=second.url, headers={"Authorization": f"Bearer {ADMIN}"})
    )
    statuses = [admin_second.get("/v1/keys").status_code for _ in range(5)]
    assert statuses == [200] * 4 + [429]
