"""Pure-ASGI middleware that measures every HTTP request.

It wraps `send` to learn the status and takes the request's measure when the
wrapped app returns: for a stream that is after its last byte, or when the client
went away. The upstream call's `CallRecord` (left by the route in
`scope["state"]["call_stats"]`, one object or a list for an agent turn) goes along to
the `Recorder`, which turns it into LLM metrics, the overhead (request duration minus
upstream wait) and the request's log line. The middleware sits outside
`GatewayMiddleware`, so rejected and failed requests are counted with the status the
client saw.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.observability.recorder import Recorder, calls_of
from gateway.observability.tracing import Tracing

log = logging.getLogger("gateway.observability")

# The route label of a request no route accepted (404s, scanners): one series for all.
UNMATCHED = "unmatched"
# A request that ended before any response began (the client left first).
CLIENT_CLOSED = 499


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, *, services: Any) -> None:
        self.app = app
        self._recorder: Recorder = services.recorder
        self._tracing: Tracing | None = services.tracing
        self._in_flight = services.metrics.in_flight
        # id(route) -> (route, template): routes are not hashable, and live as long as the app.
        self._templates: dict[int, tuple[Any, str]] = {}

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
            end = time.perf_counter()
            self._in_flight.dec()
            if not status:
                status = 500 if failed else CLIENT_CLOSED
            # Recording must never turn a served request into an error.
            try:
                state = scope.get("state") or {}
                request_id, method = state.get("request_id"), scope["method"]
                route = self._route(scope, root_path)
                stats = state.get("call_stats")
                caller = state.get("caller")
                self._recorder.add(
                    (request_id, method, route, status, end, end - start, stats, caller)
                )
                if span is not None and self._tracing is not None:
                    calls = calls_of(stats)
                    self._tracing.end_request(span, request_id, method, route, status, calls)
            except Exception:
                log.exception("recording the request failed")

    def _route(self, scope: Scope, root_path: str) -> str:
        route = scope.get("route")
        if route is None or scope.get("root_path", "") != root_path:
            return route_template(scope, root_path)
        cached = self._templates.get(id(route))
        if cached is None:
            cached = self._templates[id(route)] = (route, _template(route, ""))
        return cached[1]


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
                prefix: str = inner.get("root_path", "")[len(scope.get("root_path", "")) :]
                return prefix + found
            return _template(route, "")
        return _template(route, "")
    return UNMATCHED
