"""The global per-client request limit: a token bucket per gateway key (or client address).

The buckets live where the key limits live (`gateway/tenants/limits.py`): in this
process, or in Redis when `GATEWAY_REDIS_URL` is set, where one limit holds across
every worker and replica.
"""

from __future__ import annotations

import hashlib
import math

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway import errors
from gateway.http.asgi import header, send_error
from gateway.tenants.limits import Limits


class RateLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: Limits,
        per_minute: int,
        burst: int | None = None,
        by_key: bool = True,
    ) -> None:
        self.app = app
        self.limits = limits
        self.per_minute = per_minute
        self.capacity = burst or per_minute
        # Without gateway keys nobody checks the Authorization header: a client could send
        # a new one with each request for a fresh bucket, so the address decides instead.
        self.by_key = by_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(("/v1/", "/mcp")):
            await self.app(scope, receive, send)
            return
        wait = await self.limits.take(_client(scope, self.by_key), self.per_minute, self.capacity)
        if wait > 0:
            retry = str(max(1, math.ceil(wait)))
            await send_error(
                send,
                errors.RateLimited(
                    f"rate limit of {self.per_minute} requests per minute exceeded; "
                    f"retry in {retry} s",
                    headers={"Retry-After": retry},
                ),
                scope,
            )
            return
        await self.app(scope, receive, send)


def _client(scope: Scope, by_key: bool = True) -> str:
    token = (header(scope, b"authorization") or header(scope, b"x-api-key")) if by_key else None
    if token:
        return "k:" + hashlib.blake2b(token, digest_size=16).hexdigest()
    client = scope.get("client")
    return "a:" + (client[0] if client else "unknown")
