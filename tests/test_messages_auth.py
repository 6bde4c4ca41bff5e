"""Gateway keys as Anthropic clients send them, and Anthropic-shaped errors before routing."""

from __future__ import annotations

import httpx2


def test_x_api_key_is_a_gateway_key(make_gateway):
    gateway = make_gateway({"GATEWAY_API_KEYS": "gw-secret"})
    ok = httpx2.get(gateway.base_url + "/models", headers={"x-api-key": "gw-secret"}, timeout=10)
    assert ok.status_code == 200
    wrong = httpx2.get(gateway.base_url + "/models", headers={"x-api-key": "nope"}, timeout=10)
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_api_key"  # OpenAI's shape off /v1/messages


def test_auth_failure_on_messages_routes_is_anthropic_shaped(make_gateway):
    gateway = make_gateway({"GATEWAY_API_KEYS": "gw-secret"})
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        reply = httpx2.post(gateway.url + path, headers={"x-api-key": "wrong"}, json={}, timeout=10)
        assert reply.status_code == 401
        body = reply.json()
        assert body["type"] == "error"
        assert body["error"] == {"type": "authentication_error", "message": "invalid gateway key"}
        assert body["request_id"] == reply.headers["x-request-id"]
