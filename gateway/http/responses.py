"""The OpenAI Responses API: `POST /v1/responses`, and stored responses by id.

`POST` answers with a `response` object, or (`stream: true`) the typed events as
server-sent events (`event: <type>` + `data: <json>`). Errors before a stream starts
are plain OpenAI error bodies; a stream that breaks later ends with
`response.failed`. Hosted tools that clients send by default and that we drop are
named in `X-Gateway-Dropped-Tools`. `GET`/`DELETE /v1/responses/{id}` and
`GET /v1/responses/{id}/input_items` read the store.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway import errors
from gateway.http.asgi import (
    JSON_HEADERS,
    SSE_HEADERS,
    conversation_header,
    parse_json_object,
    read_body,
    send_bytes,
    services_of,
    text_header,
    wait_disconnect,
)
from gateway.lifecycle import Drain
from gateway.responses.service import ResponsesService, Turn
from gateway.tenants.caller import caller_of

_MAX_ITEMS = 100


class CreateResponse:
    """ASGI endpoint of `POST /v1/responses`."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        services = services_of(scope)
        service: ResponsesService = services.responses
        raw = await read_body(scope, receive, services.settings.max_body_bytes)
        body = parse_json_object(raw)
        turn = await service.prepare(
            body,
            caller_of(scope),
            conversation=conversation_header(scope),
            idempotency_key=text_header(scope, b"idempotency-key"),
        )
        scope.setdefault("state", {})["call_stats"] = turn.ctx.records
        # Every wait below races the shutdown deadline (see gateway.lifecycle).
        drain: Drain = services.drain
        extra: list[tuple[bytes, bytes]] = []
        if turn.request.dropped_tools:
            dropped = ", ".join(turn.request.dropped_tools).encode()
            extra.append((b"x-gateway-dropped-tools", dropped))
        if turn.request.stream:
            await _send_stream(service, turn, extra, receive, send, drain)
            return
        async with drain.deadline():
            response = await service.complete(turn)
        await send_bytes(send, 200, orjson.dumps(response), [*JSON_HEADERS, *extra])


async def _send_stream(
    service: ResponsesService,
    turn: Turn,
    extra_headers: list[tuple[bytes, bytes]],
    receive: Receive,
    send: Send,
    drain: Drain,
) -> None:
    batches = service.stream(turn)
    # The first batch comes once the upstream answered: a failure before it is a plain
    # error response, raised from here.
    try:
        async with drain.deadline():
            first = await anext(batches)
    except BaseException:
        await batches.aclose()  # releases the upstream if the deadline cut the wait
        raise
    gone = asyncio.ensure_future(wait_disconnect(receive))
    await send(
        {"type": "http.response.start", "status": 200, "headers": [*SSE_HEADERS, *extra_headers]}
    )
    sender = _Sender(send)
    try:
        sender.put(first)
        async with drain.deadline():
            async for batch in batches:
                if gone.done():
                    return  # the client left: closing the batches closes the upstream
                sender.put(batch)
    except errors.GatewayError as exc:
        # The shutdown deadline (upstream errors end the batches with the same event).
        sender.put(turn.events.fail(exc))
        service.save(turn)
    finally:
        await batches.aclose()
        gone.cancel()
        await sender.close()
    await send({"type": "http.response.body", "body": b"", "more_body": False})


class _Sender:
    """Sends the events in as few body messages as the stream allows.

    The stream's events are produced without pause while the upstream's data is at
    hand; the sender runs when the producer waits for more, and sends everything
    since its last send at once. A pass-through relays an upstream read as one block
    too: one message per event would cost a write and its overhead each.
    """

    def __init__(self, send: Send) -> None:
        self._send = send
        self._parts: list[bytes] = []
        self._ready = asyncio.Event()
        self._closing = False
        self._task = asyncio.ensure_future(self._run())

    def put(self, events: list[dict[str, Any]]) -> None:
        for e in events:
            self._parts.append(b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e))
            self._parts.append(b"\n\n")
        self._ready.set()

    async def close(self) -> None:
        self._closing = True
        self._ready.set()
        await self._task

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._parts:
                data = b"".join(self._parts)
                self._parts.clear()
                await self._send({"type": "http.response.body", "body": data, "more_body": True})
            if self._closing:
                return


# -- stored responses -------------------------------------------------------------------


async def get_response(request: Request) -> Response:
    stored = await _service(request).store.get(
        request.path_params["response_id"], caller_of(request.scope).key_id
    )
    return _json(stored.response)


async def delete_response(request: Request) -> Response:
    response_id = request.path_params["response_id"]
    await _service(request).store.delete(response_id, caller_of(request.scope).key_id)
    return _json({"id": response_id, "object": "response", "deleted": True})


async def list_input_items(request: Request) -> Response:
    """The items the response's model saw as input (earlier context included), paged."""
    stored = await _service(request).store.get(
        request.path_params["response_id"], caller_of(request.scope).key_id
    )
    query = request.query_params
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise errors.InvalidRequest("'order' must be 'asc' or 'desc'", param="order")
    limit = _limit(query.get("limit"))
    items = [*stored.history, *stored.input]
    if order == "desc":
        items.reverse()
    after = query.get("after")
    if after:
        ids = [item.get("id") for item in items]
        if after not in ids:
            raise errors.InvalidRequest(f"no input item with id '{after}'", param="after")
        items = items[ids.index(after) + 1 :]
    page = items[:limit]
    return _json(
        {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(items) > limit,
        }
    )


def _limit(raw: str | None) -> int:
    if raw is None:
        return 20
    if not raw.isdigit() or not 1 <= int(raw) <= _MAX_ITEMS:
        raise errors.InvalidRequest(
            f"'limit' must be an integer from 1 to {_MAX_ITEMS}", param="limit"
        )
    return int(raw)


def _service(request: Request) -> ResponsesService:
    service: ResponsesService = request.app.state.services.responses
    return service


def _json(data: Any) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")
