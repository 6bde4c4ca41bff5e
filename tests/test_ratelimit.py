"""The gateway's own rate limit: one bucket per gateway key, or per address without keys."""

from __future__ import annotations

from typing import Any

from starlette.types import Message

from gateway.http.ratelimit import RateLimitMiddleware
from gateway.tenants.limits import LocalLimits


async def _no_spend(key: str, first_day: str | None) -> float:
    return 0.0


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def _status(app: RateLimitMiddleware, authorization: bytes) -> int:
    scope = {
        "type": "http",
        "path": "/v1/models",
        "headers": [(b"authorization", authorization)],
        "client": ("127.0.0.1", 5000),
    }
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    await app(scope, receive, send)
    return int(sent[0]["status"])


async def test_without_keys_a_new_authorization_header_gets_no_new_bucket():
    app = RateLimitMiddleware(
        _ok, limits=LocalLimits(_no_spend), per_minute=60, burst=2, by_key=False
    )
    statuses = [await _status(app, f"Bearer made-up-{i}".encode()) for i in range(4)]
    assert statuses == [200, 200, 429, 429]


async def test_with_keys_each_key_has_its_own_bucket():
    app = RateLimitMiddleware(
        _ok, limits=LocalLimits(_no_spend), per_minute=60, burst=1, by_key=True
    )
    assert [await _status(app, b"Bearer k1") for _ in range(2)] == [200, 429]
    assert await _status(app, b"Bearer k2") == 200
