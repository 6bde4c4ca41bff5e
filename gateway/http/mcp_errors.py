"""JSON bodies for the MCP SDK's plain-text HTTP refusals on `/mcp`.

The SDK's Streamable HTTP app answers some requests before any JSON-RPC exists: a body
over the limit (413 "Request body too large"), a wrong `Host` (421) or `Origin` (403),
a wrong `Content-Type` (400), `Accept` (406) or method (405), as plain text or with no
body at all. Every other route of the gateway answers errors with its JSON error body,
so this wrapper swaps those bodies for ours, keeping the SDK's status and headers. JSON
answers (JSON-RPC errors) and event streams pass untouched.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import errors
from gateway.http.asgi import JSON_HEADERS, header, too_large

# The `code` of the error body, by the SDK's status.
_CODES = {
    400: "invalid_request",
    403: "invalid_origin",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    415: "unsupported_media_type",
    421: "invalid_host",
}
_PASS = (b"application/json", b"text/event-stream")
_REPLACED = (b"content-type", b"content-length")


class JsonErrors:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.limit = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            # Refused before the SDK reads a byte of it.
            await _send(send, 413, too_large(self.limit), [])
            return
        held: Message | None = None
        text = b""

        async def replace_plain_errors(message: Message) -> None:
            nonlocal held, text
            if message["type"] == "http.response.start":
                kind = _content_type(message)
                if message["status"] >= 400 and not kind.startswith(_PASS):
                    held = message
                    return
            elif held is not None and message["type"] == "http.response.body":
                text += message.get("body", b"")
                if message.get("more_body", False):
                    return
                kept = [(k, v) for k, v in held.get("headers", ()) if k.lower() not in _REPLACED]
                error = _error(held["status"], text, self.limit)
                await _send(send, held["status"], error, kept)
                return
            await send(message)

        await self.app(scope, receive, replace_plain_errors)


def _content_type(message: Message) -> bytes:
    for name, value in message.get("headers", ()):
        if name.lower() == b"content-type":
            return bytes(value).lower()
    return b""


def _error(status: int, text: bytes, limit: int) -> errors.GatewayError:
    if status == 413:
        return too_large(limit)
    detail = text.decode("utf-8", "replace").strip() or f"HTTP {status} from the MCP transport"
    return errors.InvalidRequest(detail, code=_CODES.get(status, "invalid_request"))


async def _send(
    send: Send, status: int, error: errors.GatewayError, kept: list[tuple[bytes, bytes]]
) -> None:
    body = error.json_bytes()
    headers = [*kept, *JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
