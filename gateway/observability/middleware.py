"""Pure-ASGI middleware that measures every HTTP request and writes its log line.

It wraps `send` to learn the status, and records when the wrapped app returns: for a
stream that is after its last byte, or when the client went away. The upstream
call's `CallStats` (left by the route in `scope["state"]["call_stats"]`, one object or
a list for an agent turn) feeds the LLM metrics, the overhead (request duration minus
upstream wait) and the log line. It sits outside `GatewayMiddleware`, so rejected
and failed requests are counted with the status the client saw.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.observability.logging import ACCESS_LOGGER, AccessLog
from gateway.observability.metrics import Metrics
from gateway.observability.tracing import Tracing
from gateway.providers.base import CallStats

log = logging.getLogger("gateway.observability")

# The route label of a request no route accepted (404s, scanners): one series for all.
UNMATCHED = "unmatched"
# A request that ended before any response began (the client left first).
CLIENT_CLOSED = 499


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, *, services: Any) -> None:
        self.app = app
        self._metrics: Metrics = services.metrics
        self._tracing: Tracing | None = services.tracing
        self._in_flight = self._metrics.in_flight
        self._access: AccessLog = services.access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        root_path = scope.get("root_path", "")
        status = 0

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        span = self._tracing.start_request(scope) if self._tracing is not None else None
        self._in_flight.inc()
        failed = True
        try:
            await self.app(scope, receive, send_observed)
            failed = False
        finally:
            self._in_flight.dec()
            if not status:
                status = 500 if failed else CLIENT_CLOSED
            self._finish(scope, root_path, status, time.perf_counter() - start, span)

    def _finish(
        self, scope: Scope, root_path: str, status: int, duration: float, span: Any
    ) -> None:
        # Recording must never turn a served request into an error.
        try:
            state = scope.get("state") or {}
            stats = state.get("call_stats")
            calls = () if stats is None else (stats,) if type(stats) is CallStats else tuple(stats)
            route = route_template(scope, root_path)
            method = scope["method"]
            if span is not None and self._tracing is not None:
                self._tracing.end_request(
                    span,
                    method=method,
                    route=route,
                    status=status,
                    request_id=state.get("request_id"),
                    calls=calls,
                )
            upstream = calls[0].upstream_seconds if len(calls) == 1 else _upstream(calls)
            overhead = duration - upstream if duration > upstream else 0.0
            self._metrics.observe_http(method, route, status, duration, overhead)
            for stats in calls:
                self._metrics.record_call(stats)
            if self._access.enabled():
                ts = self._access.timestamp()
                self._access.write(_line(ts, state, method, route, status, duration, calls))
        except Exception:
            log.exception("recording the request's metrics failed")


def _upstream(calls: Sequence[CallStats]) -> float:
    return sum(c.upstream_seconds for c in calls)


def _line(
    ts: str,
    state: dict[str, Any],
    method: str,
    route: str,
    status: int,
    duration: float,
    calls: Sequence[CallStats],
) -> dict[str, Any]:
    """The request line's fields; no headers, bodies or keys ever reach it."""
    if not calls:
        return {
            "ts": ts, "level": "info", "logger": ACCESS_LOGGER, "msg": "request",
            "request_id": state.get("request_id"), "method": method, "route": route,
            "status": status, "duration_ms": _ms(duration),
        }  # fmt: skip
    last = calls[-1]
    one = len(calls) == 1
    line = {
        "ts": ts, "level": "info", "logger": ACCESS_LOGGER, "msg": "request",
        "request_id": state.get("request_id"), "method": method, "route": route,
        "status": status, "duration_ms": _ms(duration),
        "provider": last.provider, "model": last.model,
        "upstream_ms": _ms(last.upstream_seconds if one else _upstream(calls)),
        "prompt_tokens": last.prompt_tokens if one else sum(c.prompt_tokens for c in calls),
        "completion_tokens": (
            last.completion_tokens if one else sum(c.completion_tokens for c in calls)
        ),
        "retries": last.retries if one else sum(c.retries for c in calls),
        "outcome": (
            last.outcome if one
            else next((c.outcome for c in calls if c.outcome != "success"), "success")
        ),
    }  # fmt: skip
    if not one:
        line["calls"] = len(calls)
    if last.first_token_seconds is not None:
        line["ttft_ms"] = _ms(last.first_token_seconds)
    return line


def _ms(seconds: float) -> float:
    # Milliseconds to the microsecond; cheaper than round().
    return int(seconds * 1_000_000) / 1000


def route_template(scope: Scope, root_path: str = "") -> str:
    """The matched route's template (`/v1/models/{handle}`), never the raw path."""
    route = scope.get("route")
    if route is None:
        # Rejected before routing (authentication, rate limit): find what it would have hit.
        app = scope.get("app")
        return _match(getattr(getattr(app, "router", None), "routes", ()), scope)
    # A route inside a mounted app is relative to the mount's prefix, kept in root_path.
    prefix = scope.get("root_path", "")[len(root_path) :]
    return _template(route, prefix)


def _template(route: Any, prefix: str) -> str:
    if isinstance(route, Mount):
        # The mounted app routed nothing; a root mount would otherwise catch every path.
        return prefix + route.path_format if route.path else UNMATCHED
    path = getattr(route, "path_format", None)
    return prefix + path if isinstance(path, str) else UNMATCHED


def _match(routes: Sequence[Any], scope: Scope) -> str:
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.NONE:
            continue
        if isinstance(route, Mount):
            inner = {**scope, **child}
            found = _match(route.routes, inner)
            if found != UNMATCHED:
                prefix = inner.get("root_path", "")[len(scope.get("root_path", "")) :]
                return prefix + found
            return _template(route, "")
        return _template(route, "")
    return UNMATCHED
