"""Virtual keys end to end: the admin's REST API, allow-lists, revocation, the CLI."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from gateway.cli import main
from gateway.observability import multiprocess
from gateway.tenants.auth import CACHE_SECONDS
from tests.gateway_server import GatewayServer
from tests.tenants.conftest import ADMIN, chat, new_key, sdk


def test_admin_creates_lists_changes_and_revokes_keys(admin_client: httpx2.Client) -> None:
    created = new_key(admin_client, "team-a", models=["openai/*"], rpm=10, budget_period="daily")
    secret = created.pop("key")
    assert created["prefix"] == secret[:10]
    listed = admin_client.get("/v1/keys").json()["data"]
    assert [k["name"] for k in listed] == ["team-a"]
    # The secret is shown once; neither it nor its hash is ever listed.
    assert secret not in str(listed) and "key_hash" not in listed[0]
    by_name = admin_client.get("/v1/keys/team-a").json()
    assert by_name == admin_client.get(f"/v1/keys/{created['id']}").json() == listed[0]
    assert by_name["models"] == ["openai/*"] and by_name["max_budget_usd"] is None

    patched = admin_client.patch("/v1/keys/team-a", json={"rpm": None, "tpm": 500})
    assert patched.status_code == 200
    assert (patched.json()["rpm"], patched.json()["tpm"]) == (None, 500)

    assert admin_client.post("/v1/keys", json={"name": "team-a"}).status_code == 409
    bad = admin_client.post("/v1/keys", json={"name": "x", "rpm": "many"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "rpm"
    bad = admin_client.post("/v1/keys", json={"name": "x", "budget_period": "weekly"})
    assert bad.json()["error"]["param"] == "budget_period"
    assert admin_client.get("/v1/keys/nope").status_code == 404

    deleted = admin_client.delete("/v1/keys/team-a")
    assert deleted.json() == {"id": created["id"], "object": "key.deleted", "deleted": True}
    assert admin_client.get("/v1/keys/team-a").json()["revoked_at"] is not None


def test_only_the_admin_key_manages_keys(
    tenant_gateway: Callable[..., GatewayServer], clients: Callable[..., Any]
) -> None:
    gw = tenant_gateway({"GATEWAY_API_KEYS": "static-key"})
    with httpx2.Client(base_url=gw.url, timeout=30) as client:
        assert client.get("/v1/keys").status_code == 401
        static = client.get("/v1/keys", headers={"Authorization": "Bearer static-key"})
        assert static.status_code == 403
        assert static.json()["error"]["type"] == "permission_error"
        admin = {"Authorization": f"Bearer {ADMIN}"}
        secret = client.post("/v1/keys", json={"name": "k"}, headers=admin).json()["key"]
        virtual = client.get("/v1/keys", headers={"Authorization": f"Bearer {secret}"})
        assert virtual.status_code == 403
        # Static keys keep every right on the model routes.
        assert client.get("/v1/models", headers={"x-api-key": "static-key"}).status_code == 200


def test_a_static_key_that_looks_virtual_still_works(
    tenant_gateway: Callable[..., GatewayServer],
) -> None:
    # An operator may pick any string, `sk-gw-…` included, for GATEWAY_API_KEYS.
    gw = tenant_gateway({"GATEWAY_API_KEYS": "sk-gw-static-operator-key"})
    with httpx2.Client(base_url=gw.url, timeout=30) as client:
        ok = client.get("/v1/models", headers={"Authorization": "Bearer sk-gw-static-operator-key"})
        wrong = client.get("/v1/models", headers={"Authorization": "Bearer sk-gw-nobody"})
    assert ok.status_code == 200, ok.text
    assert wrong.status_code == 401


def test_a_key_sees_and_uses_only_what_it_may(
    tenant_gateway: Callable[..., GatewayServer], clients: Callable[..., Any]
) -> None:
    gw = tenant_gateway()
    admin = clients(httpx2.Client(base_url=gw.url, headers={"Authorization": f"Bearer {ADMIN}"}))
    for name in ("team-a", "other"):
        response = admin.post("/v1/agents", json={"name": name, "model": "openai/gpt-4o-mini"})
        assert response.status_code == 201
    secret = new_key(admin, "narrow", models=["openai/gpt-4o-mini"], agents=["team-*"])["key"]
    client = clients(sdk(gw.base_url, secret))

    assert sorted(m.id for m in client.models.list()) == ["agent/team-a", "openai/gpt-4o-mini"]
    assert chat(client).choices[0].message.content
    assert chat(client, "gpt-4o-mini").choices[0].message.content  # resolves to an allowed one
    with pytest.raises(openai.PermissionDeniedError) as denied:
        chat(client, "openai/gpt-4o")
    assert denied.value.code == "model_not_allowed"
    assert denied.value.body["type"] == "permission_error"  # type: ignore[index]
    with pytest.raises(openai.PermissionDeniedError) as denied:
        chat(client, "agent/other")
    assert denied.value.code == "agent_not_allowed"
    assert chat(client, "agent/team-a").choices[0].message.content

    rest = clients(httpx2.Client(base_url=gw.url, headers={"x-api-key": secret}))
    assert [a["name"] for a in rest.get("/v1/agents").json()["data"]] == ["team-a"]
    other = rest.get("/v1/agents/other")
    assert other.status_code == 403 and other.json()["error"]["code"] == "agent_not_allowed"
    made = rest.post("/v1/agents", json={"name": "team-b", "model": "openai/gpt-4o"})
    assert made.json()["error"]["code"] == "model_not_allowed"
    assert rest.get("/v1/models/openai/gpt-4o").json()["error"]["code"] == "model_not_allowed"


def test_revoked_and_expired_keys_are_refused(
    tenant_gateway: Callable[..., GatewayServer], clients: Callable[..., Any]
) -> None:
    gw = tenant_gateway()
    admin = clients(httpx2.Client(base_url=gw.url, headers={"Authorization": f"Bearer {ADMIN}"}))
    secret = new_key(admin, "short-lived")["key"]
    client = clients(sdk(gw.base_url, secret))
    assert chat(client).choices
    admin.delete("/v1/keys/short-lived")
    with pytest.raises(openai.AuthenticationError) as refused:
        chat(client)
    assert "revoked" in str(refused.value)

    expired = new_key(admin, "expired", expires_at="2020-01-01T00:00:00Z")["key"]
    with pytest.raises(openai.AuthenticationError, match="expired"):
        chat(clients(sdk(gw.base_url, expired)))
    with pytest.raises(openai.AuthenticationError):
        chat(clients(sdk(gw.base_url, "sk-gw-made-up")))


def test_a_revoked_key_stops_on_another_replica_within_the_cache_time(
    tenant_gateway: Callable[..., GatewayServer], clients: Callable[..., Any]
) -> None:
    first, second = tenant_gateway(), tenant_gateway()
    admin = clients(httpx2.Client(base_url=first.url, headers={"Authorization": f"Bearer {ADMIN}"}))
    secret = new_key(admin, "everywhere")["key"]
    on_second = clients(sdk(second.base_url, secret))
    assert chat(on_second).choices  # the second replica now holds the key in its cache
    admin.delete("/v1/keys/everywhere")
    time.sleep(CACHE_SECONDS + 0.1)
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        chat(on_second)


def test_keys_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite:///{tmp_path / 'keys.db'}")
    monkeypatch.delenv("GATEWAY_CONFIG", raising=False)
    argv = ["keys", "create", "ci", "--models", "kimi/*, openai/gpt-4o-mini", "--rpm", "60"]
    assert main([*argv, "--max-budget-usd", "5", "--budget-period", "monthly"]) == 0
    out = capsys.readouterr()
    assert out.out.strip().startswith("sk-gw-") and "shown once" in out.err
    assert main(["keys", "create", "ci"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["keys", "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split() == ["NAME", "ID", "PREFIX", "STATE", "LIMITS"]
    assert "rpm=60 budget=5.0 period=monthly" in listing[1] and "active" in listing[1]
    assert main(["keys", "show", "ci"]) == 0
    assert '"models": [\n    "kimi/*",\n    "openai/gpt-4o-mini"\n  ]' in capsys.readouterr().out
    assert main(["keys", "revoke", "ci"]) == 0
    assert main(["keys", "list"]) == 0
    assert "revoked" in capsys.readouterr().out


def test_serve_with_workers_and_no_redis_warns_that_limits_are_per_worker(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import uvicorn

    served: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: served.append(kw))
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("GATEWAY_CONFIG", raising=False)
    monkeypatch.delenv("GATEWAY_REDIS_URL", raising=False)
    # `serve` writes these for its workers: monkeypatch puts them back afterwards.
    for name, value in (("GATEWAY_HOST", "127.0.0.1"), ("GATEWAY_WORKERS", "1")):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(multiprocess.ENV_VAR, "")
    assert main(["serve", "--workers", "2", "--port", "0"]) == 0
    assert "set GATEWAY_REDIS_URL to share them" in capsys.readouterr().err
    monkeypatch.setenv("GATEWAY_REDIS_URL", "redis://127.0.0.1:6379/0")
    assert main(["serve", "--workers", "2", "--port", "0"]) == 0
    assert "GATEWAY_REDIS_URL" not in capsys.readouterr().err
    assert [kw["workers"] for kw in served] == [2, 2]
