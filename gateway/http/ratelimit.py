"""Per-client request rate limit: a token bucket per gateway key (or client address).

Buckets live in this process's memory, so with N workers or replicas the effective
limit is N times the setting; a shared store is the fix when that matters.
"""

from __future__ import annotations

import hashlib
import math
import time

from cachetools import TTLCache
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway import errors
from gateway.http.asgi import header, send_error


class TokenBuckets:
    """The buckets, shared by every middleware instance that enforces one limit."""

    def __init__(self, per_minute: int, burst: int | None = None) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(burst or per_minute)
        # (tokens, last refill); idle clients expire once their bucket would be full again.
        ttl = max(60.0, self.capacity / self.rate)
        self._buckets: TTLCache[bytes, tuple[float, float]] = TTLCache(maxsize=100_000, ttl=ttl)

    def take(self, client: bytes) -> float:
        """Take one token; return 0, or the seconds until one is available."""
        now = time.monotonic()
        tokens, last = self._buckets.get(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[client] = (tokens, now)
            return (1.0 - tokens) / self.rate
        self._buckets[client] = (tokens - 1.0, now)
        return 0.0


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, *, buckets: TokenBuckets, by_key: bool = True) -> None:
        self.app = app
        self.buckets = buckets
        # Without gateway keys nobody checks the Authorization header: a client could send
        # a new one with each request for a fresh bucket, so the address decides instead.
        self.by_key = by_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(("/v1/", "/mcp")):
            await self.app(scope, receive, send)
            return
        wait = self.buckets.take(_client(scope, self.by_key))
        if wait > 0:
            retry = str(max(1, math.ceil(wait)))
            limit = round(self.buckets.rate * 60)
            await send_error(
                send,
                errors.RateLimited(
                    f"rate limit of {limit} requests per minute exceeded; retry in {retry} s",
                    headers={"Retry-After": retry},
                ),
                scope,
            )
            return
        await self.app(scope, receive, send)


def _client(scope: Scope, by_key: bool = True) -> bytes:
    token = (header(scope, b"authorization") or header(scope, b"x-api-key")) if by_key else None
    if token:
        return hashlib.blake2b(token, digest_size=16).digest()
    client = scope.get("client")
    return (client[0] if client else "unknown").encode()
