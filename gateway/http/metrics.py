"""`GET /metrics`: the Prometheus text format (summed over workers in multiprocess mode).

No gateway key is needed unless `GATEWAY_METRICS_AUTH` is set; `GatewayMiddleware`
decides that.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.observability.metrics import CONTENT_TYPE


async def metrics(request: Request) -> Response:
    services = request.app.state.services
    # This worker's last few finished requests count too (see observability/recorder.py).
    services.recorder.flush()
    body = services.metrics.exposition()
    return Response(body, headers={"content-type": CONTENT_TYPE})
