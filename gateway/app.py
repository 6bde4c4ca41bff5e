"""`create_app(settings)`: the Starlette app with both facades over one services object."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import errors
from gateway.http import agents
from gateway.http.chat import ChatCompletions
from gateway.http.health import healthz, readyz
from gateway.http.metrics import metrics
from gateway.http.middleware import GatewayMiddleware
from gateway.http.models import get_model, list_models
from gateway.http.ratelimit import RateLimitMiddleware
from gateway.mcp.server import McpFacade
from gateway.observability.middleware import ObservabilityMiddleware
from gateway.services import Services
from gateway.settings import Settings


def create_app(settings: Settings, services: Services | None = None) -> Starlette:
    services = services or Services(settings)
    mcp = McpFacade(services)
    mcp_app = mcp.http_app(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await services.start()
        try:
            async with mcp.running():
                yield
        finally:
            await services.close()

    routes = [
        Route("/v1/chat/completions", ChatCompletions(), methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{handle:path}", get_model, methods=["GET"]),
        Route("/v1/agents", agents.list_agents, methods=["GET"]),
        Route("/v1/agents", agents.create_agent, methods=["POST"]),
        Route("/v1/agents/{ref}", agents.get_agent, methods=["GET"]),
        Route("/v1/agents/{ref}", agents.update_agent, methods=["PATCH"]),
        Route("/v1/agents/{ref}", agents.delete_agent, methods=["DELETE"]),
        Route("/v1/agents/{ref}/messages", agents.list_messages, methods=["GET"]),
        Route("/v1/agents/{ref}/messages", agents.post_message, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        # The MCP app as a plain ASGI endpoint on its own path: a `Mount("/")` would also
        # take every unknown path and wrong method, answering them with its plain-text 404.
        Route("/mcp", mcp_app),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            # Outermost, so rejected requests are counted and logged with their status.
            Middleware(ObservabilityMiddleware, services=services),
            Middleware(
                GatewayMiddleware,
                api_keys=[k.get_secret_value() for k in settings.api_keys],
                metrics_auth=settings.metrics_auth,
            ),
            *_rate_limit(settings),
        ],
        exception_handlers={
            errors.GatewayError: _gateway_error,
            HTTPException: _http_error,
        },
    )
    app.state.services = services
    return app


def _rate_limit(settings: Settings) -> list[Middleware]:
    if not settings.rate_limit_rpm:
        return []
    return [
        Middleware(
            RateLimitMiddleware,
            per_minute=settings.rate_limit_rpm,
            burst=settings.rate_limit_burst,
        )
    ]


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.GatewayError)
    return Response(
        exc.json_bytes(), status_code=exc.status, headers=exc.headers, media_type="application/json"
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
        return Response(error.json_bytes(), status_code=exc.status_code, media_type="application/json")
    return await _gateway_error(request, error)
