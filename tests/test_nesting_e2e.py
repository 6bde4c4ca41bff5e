"""Deeply nested JSON bodies: refused with 400 `invalid_json` on every chat route, in the
route's own error shape, instead of failing later when the gateway writes them again."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest

from gateway.http.asgi import MAX_JSON_DEPTH

MODEL = "openai/gpt-4o-mini"


def nested(depth: int) -> Any:
    """A JSON value whose objects nest `depth` levels (the value itself is level 1)."""
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


# (path, body holding a value nested `d` levels, levels above that value in the body)
ROUTES = [
    (
        "/v1/chat/completions",
        lambda d: {
            "model": MODEL,
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": nested(d)}}],
        },
        4,
    ),
    (
        "/v1/messages",
        lambda d: {
            "model": MODEL,
            "max_tokens": 16,
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": nested(d)}],
                },
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}],
                },
            ],
        },
        5,
    ),
    (
        "/v1/messages/count_tokens",
        lambda d: {
            "model": MODEL,
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"name": "f", "input_schema": nested(d)}],
        },
        3,
    ),
    (
        "/v1/responses",
        lambda d: {
            "model": MODEL,
            "input": "hi",
            "text": {"format": {"type": "json_schema", "name": "s", "schema": nested(d)}},
        },
        3,
    ),
]


def post(gateway, path: str, body: dict[str, Any]) -> httpx2.Response:
    return httpx2.post(
        gateway.url + path,
        content=json.dumps(body).encode(),
        headers={"content-type": "application/json", "authorization": "Bearer k"},
        timeout=30,
    )


@pytest.mark.parametrize(("path", "make", "above"), ROUTES, ids=[r[0] for r in ROUTES])
def test_too_deep_is_400_in_the_routes_shape(gateway, upstream, path, make, above):
    r = post(gateway, path, make(300))
    assert r.status_code == 400, r.text
    body = r.json()
    if path.startswith("/v1/messages"):
        assert body["type"] == "error"
        assert body["error"]["type"] == "invalid_request_error"
        message = body["error"]["message"]
    else:
        assert body["error"]["code"] == "invalid_json"
        message = body["error"]["message"]
    assert "nested" in message
    assert upstream.chat_requests == []


@pytest.mark.parametrize(("path", "make", "above"), ROUTES, ids=[r[0] for r in ROUTES])
def test_deepest_allowed_body_is_served(gateway, upstream, path, make, above):
    # The whole body nests exactly MAX_JSON_DEPTH levels: accepted, and writing it on
    # (to the provider, the store, the reply) must not fail either.
    r = post(gateway, path, make(MAX_JSON_DEPTH - above))
    assert r.status_code == 200, r.text
