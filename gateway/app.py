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
from gateway.http.chat import ChatCompletions
from gateway.http.health import healthz, readyz
from gateway.http.middleware import GatewayMiddleware
from gateway.http.models import get_model, list_models
from gateway.services import Services
from gateway.settings import Settings


def create_app(settings: Settings, services: Services | None = None) -> Starlette:
    services = services or Services(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await services.start()
        try:
            yield
        finally:
            await services.close()

    routes = [
        Route("/v1/chat/completions", ChatCompletions(), methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{handle:path}", get_model, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(
                GatewayMiddleware,
                api_keys=[k.get_secret_value() for k in settings.api_keys],
                metrics_auth=settings.metrics_auth,
            )
        ],
        exception_handlers={
            errors.GatewayError: _gateway_error,
            HTTPException: _http_error,
        },
    )
    app.state.services = services
    return app


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
