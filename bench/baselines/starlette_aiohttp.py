"""Baseline: a Starlette app with one route that forwards
``POST /v1/chat/completions`` to the upstream with one pooled aiohttp session and
relays the JSON reply, or the SSE stream piece by piece as it arrives.  It is the
reference the gateway's ratio is taken against (same framework, same client).

Run: ``python bench/baselines/starlette_aiohttp.py --port 8002 --upstream http://127.0.0.1:9000/v1``
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import UPSTREAM_ERROR, chat_url, is_sse, make_session, serve


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.session = make_session()
    app.state.chat_url = chat_url()
    try:
        yield
    finally:
        await app.state.session.close()


async def stream_body(resp: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    try:
        async for piece in resp.content.iter_any():
            yield piece
    finally:
        resp.release()  # back to the pool, also when the client went away


async def chat_completions(request: Request) -> Response:
    session: aiohttp.ClientSession = request.app.state.session
    body = await request.body()
    try:
        resp = await session.post(request.app.state.chat_url, data=body)
    except aiohttp.ClientError:
        return Response(UPSTREAM_ERROR, status_code=502, media_type="application/json")
    if is_sse(resp.headers.get("Content-Type", "")):
        headers = {"Cache-Control": "no-cache"}
        return StreamingResponse(
            stream_body(resp), resp.status, headers, media_type="text/event-stream"
        )
    try:
        data = await resp.read()
    finally:
        resp.release()
    return Response(data, status_code=resp.status, media_type="application/json")


app = Starlette(
    routes=[Route("/v1/chat/completions", chat_completions, methods=["POST"])], lifespan=lifespan
)


if __name__ == "__main__":
    serve(app, __doc__ or "")
