"""Liveness and readiness."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.http.models import json_response


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready or not (and why); model-group targets resting now are listed either way."""
    services = request.app.state.services
    problems = await services.readiness_problems()
    resting = await services.groups.resting()
    extra = {"cooldowns": resting} if resting else {}
    if problems:
        return json_response({"status": "not ready", "problems": problems, **extra}, status=503)
    return json_response({"status": "ready", **extra})
