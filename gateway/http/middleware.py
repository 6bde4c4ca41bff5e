"""Pure ASGI middleware: request id, gateway-key authentication, last-resort error bodies.

It wraps `send` rather than using `BaseHTTPMiddleware`, so streams pass through
untouched and are observed when their last byte goes out.
"""

from __future__ import annotations

import hmac
import logging
import re
import uuid
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import errors
from gateway.http.asgi import header, send_error
from gateway.http.console import is_console_path

log = logging.getLogger("gateway.http")

_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
# Liveness, readiness and (unless configured otherwise) metrics need no key.
_OPEN_PATHS = frozenset({"/healthz", "/readyz"})


class GatewayMiddleware:
    def __init__(
        self, app: ASGIApp, *, api_keys: Sequence[str], metrics_auth: bool = False
    ) -> None:
        self.app = app
        self._keys = [k.encode() for k in api_keys]
        self._open = _OPEN_PATHS if metrics_auth else _OPEN_PATHS | {"/metrics"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = header(scope, b"x-request-id")
        request_id = sent if sent and _REQUEST_ID.match(sent) else uuid.uuid4().hex.encode()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id.decode()
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id)]
            await send(message)

        try:
            path = scope["path"]
            # `/.well-known/` stays open so MCP clients probing for OAuth metadata get a
            # clear 404 (no OAuth here) rather than another 401.
            if (
                self._keys
                and path not in self._open
                and not path.startswith("/.well-known/")
                and not is_console_path(path)
            ):
                self._authenticate(scope)
            await self.app(scope, receive, send_with_id)
        except errors.GatewayError as exc:
            if started:
                raise
            await send_error(send_with_id, _with_challenge(scope, exc), scope)
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if started:
                raise
            await send_error(
                send_with_id, errors.GatewayError("internal error in the gateway"), scope
            )

    def _authenticate(self, scope: Scope) -> None:
        token = presented_key(scope)
        ok = False
        # Compare against every key so timing does not reveal which one nearly matched.
        for key in self._keys:
            ok |= hmac.compare_digest(token or b"", key)
        if not ok:
            raise errors.AuthenticationError(
                "missing or invalid gateway key: send 'Authorization: Bearer <key>' "
                "(or 'x-api-key: <key>')"
                if not token
                else "invalid gateway key"
            )


def presented_key(scope: Scope) -> bytes | None:
    """The gateway key the client sent: `Authorization: Bearer …`, as OpenAI clients
    send it, or `x-api-key`, as Anthropic clients do (Claude Code with ANTHROPIC_API_KEY)."""
    scheme, _, token = (header(scope, b"authorization") or b"").partition(b" ")
    if scheme.lower() == b"bearer" and token.strip():
        return token.strip()
    api_key = header(scope, b"x-api-key")
    return api_key.strip() if api_key and api_key.strip() else None


def _with_challenge(scope: Scope, exc: errors.GatewayError) -> errors.GatewayError:
    """The Bearer challenge of RFC 6750 §3, for `/mcp` and the OpenAI routes alike.

    `error="invalid_token"` only when a Bearer token was sent: a request without one (or
    with another scheme) gets the bare challenge, as §3.1 asks. No `resource_metadata`
    (RFC 9728): the gateway is not an OAuth resource server, and metadata without an
    authorization server would send MCP clients into an OAuth flow that cannot succeed.
    """
    if isinstance(exc, errors.AuthenticationError) and "WWW-Authenticate" not in exc.headers:
        challenge = 'Bearer realm="agent-gateway"'
        scheme, _, token = (header(scope, b"authorization") or b"").partition(b" ")
        if scheme.lower() == b"bearer" and token.strip():
            challenge += ', error="invalid_token", error_description="invalid gateway key"'
        exc.headers["WWW-Authenticate"] = challenge
    return exc
