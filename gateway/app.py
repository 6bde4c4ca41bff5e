"""`create_app(settings)`: the Starlette app with both facades over one services object."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway import errors, lifecycle
from gateway.http import agents, console, keys
from gateway.http.asgi import error_bytes
from gateway.http.chat import ChatCompletions
from gateway.http.health import healthz, readyz
from gateway.http.identity import me
from gateway.http.mcp_errors import JsonErrors
from gateway.http.messages import CountTokens, Messages
from gateway.http.metrics import metrics
from gateway.http.middleware import GatewayMiddleware
from gateway.http.models import get_model, list_models
from gateway.http.protocol import READ_TIMEOUT_STATE
from gateway.http.ratelimit import RateLimitMiddleware
from gateway.http.responses import (
    CreateResponse,
    delete_response,
    get_response,
    list_input_items,
)
from gateway.http.usage import usage
from gateway.mcp.server import McpFacade
from gateway.observability.middleware import ObservabilityMiddleware
from gateway.services import Services
from gateway.settings import Settings

CHAT_PATH = "/v1/chat/completions"


class GatewayApp(Starlette):
    """Starlette, with one fast lane: `POST /v1/chat/completions` skips the router.

    The hot route still runs inside the same user middleware (metrics, request id, auth,
    rate limit, error rendering), but not through Starlette's server-error and exception
    middleware and route matching, which cost about a tenth of a pass-through request.
    Everything else, including a wrong method on the chat path, takes the normal way.
    """

    def __init__(self, hot_route: Route, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._hot_route = hot_route
        self._hot_stack: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == CHAT_PATH and scope["method"] == "POST":
            if self._hot_stack is None:
                self._hot_stack = self._build_hot_stack()
            scope["app"] = self
            scope["route"] = self._hot_route
            await self._hot_stack(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    def _build_hot_stack(self) -> ASGIApp:
        app: ASGIApp = self._hot_route.app
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return app


def create_app(settings: Settings, services: Services | None = None) -> Starlette:
    services = services or Services(settings)
    mcp = McpFacade(services)
    mcp_app = mcp.http_app(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        await services.start()
        # Everything built so far lives as long as the process: keep it out of the
        # collector's way, so full collections under load stay short (tail latency).
        gc.freeze()
        try:
            # SIGTERM starts the drain at once; uvicorn's own shutdown comes after.
            with lifecycle.on_signals(services.drain.begin):
                async with mcp.running():
                    # The server's protocol (`gateway.http.protocol`) reads it from here.
                    yield {READ_TIMEOUT_STATE: settings.request_read_timeout}
        finally:
            await services.close()

    chat_route = Route(CHAT_PATH, ChatCompletions(), methods=["POST"])
    routes = [
        chat_route,
        Route("/v1/messages", Messages(), methods=["POST"]),
        Route("/v1/messages/count_tokens", CountTokens(), methods=["POST"]),
        Route("/v1/responses", CreateResponse(), methods=["POST"]),
        Route("/v1/responses/{response_id}", get_response, methods=["GET"]),
        Route("/v1/responses/{response_id}", delete_response, methods=["DELETE"]),
        Route("/v1/responses/{response_id}/input_items", list_input_items, methods=["GET"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/me", me, methods=["GET"]),
        Route("/v1/models/{handle:path}", get_model, methods=["GET"]),
        Route("/v1/agents", agents.list_agents, methods=["GET"]),
        Route("/v1/agents", agents.create_agent, methods=["POST"]),
        Route("/v1/agents/{ref}", agents.get_agent, methods=["GET"]),
        Route("/v1/agents/{ref}", agents.update_agent, methods=["PATCH"]),
        Route("/v1/agents/{ref}", agents.delete_agent, methods=["DELETE"]),
        Route("/v1/agents/{ref}/messages", agents.list_messages, methods=["GET"]),
        Route("/v1/agents/{ref}/messages", agents.post_message, methods=["POST"]),
        Route("/v1/agents/{ref}/conversations", agents.list_conversations, methods=["GET"]),
        Route("/v1/keys", keys.list_keys, methods=["GET"]),
        Route("/v1/keys", keys.create_key, methods=["POST"]),
        Route("/v1/keys/{ref}", keys.get_key, methods=["GET"]),
        Route("/v1/keys/{ref}", keys.update_key, methods=["PATCH"]),
        Route("/v1/keys/{ref}", keys.delete_key, methods=["DELETE"]),
        Route("/v1/usage", usage, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        # The MCP app as a plain ASGI endpoint on its own path: a `Mount("/")` would also
        # take every unknown path and wrong method, answering them with its plain-text 404.
        Route("/mcp", JsonErrors(mcp_app, settings.max_body_bytes)),
        *console.routes(),
    ]
    app = GatewayApp(
        chat_route,
        routes=routes,
        lifespan=lifespan,
        middleware=[
            # Outermost, so rejected requests are counted and logged with their status.
            Middleware(ObservabilityMiddleware, services=services),
            Middleware(
                GatewayMiddleware,
                tenants=services.tenants,
                metrics_auth=settings.metrics_auth,
                drain=services.drain,
            ),
            *_rate_limit(settings, services),
        ],
        exception_handlers={
            errors.GatewayError: _gateway_error,
            HTTPException: _http_error,
        },
    )
    app.state.services = services
    return app


def _rate_limit(settings: Settings, services: Services) -> list[Middleware]:
    if not settings.rate_limit_rpm:
        return []
    return [
        Middleware(
            RateLimitMiddleware,
            # The tenants' limits: shared by both middleware stacks, and by every
            # process when Redis is configured.
            limits=services.tenants.limits,
            per_minute=settings.rate_limit_rpm,
            burst=settings.rate_limit_burst,
            by_key=bool(settings.api_keys or settings.admin_key),
        )
    ]


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.GatewayError)
    return Response(
        error_bytes(request.scope, exc),
        status_code=exc.status,
        headers=exc.headers,
        media_type="application/json",
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error: errors.GatewayError
    if exc.status_code == 404:
        error = errors.NotFound(f"no route for {request.url.path}", code="not_found")
    elif exc.status_code == 405:
        error = errors.MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}")
    else:
        error = errors.InvalidRequest(str(exc.detail), code="http_error")
        return Response(
            error_bytes(request.scope, error),
            status_code=exc.status_code,
            media_type="application/json",
        )
    return await _gateway_error(request, error)
