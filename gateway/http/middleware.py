"""Pure ASGI middleware: request id, refusal while draining, gateway-key authentication,
NUL-free URLs, last-resort error bodies.

It wraps `send` rather than using `BaseHTTPMiddleware`, so streams pass through
untouched and are observed when their last byte goes out.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import errors, lifecycle
from gateway.http.asgi import header, reject_nul_in_url, send_error
from gateway.http.console import is_console_path
from gateway.lifecycle import Drain
from gateway.observability.recorder import calls_of
from gateway.tenants.caller import CALLER_STATE, Caller
from gateway.tenants.keys import SECRET_PREFIX
from gateway.tenants.limits import KeyLimited
from gateway.tenants.service import Tenants

log = logging.getLogger("gateway.http")

_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
# Liveness, readiness and (unless configured otherwise) metrics need no key.
_OPEN_PATHS = frozenset({"/healthz", "/readyz"})


class GatewayMiddleware:
    """Request id, then who is calling (a `Caller` in the scope's state), then the key's
    limits. Keys come as `Authorization: Bearer …` or `x-api-key` (Anthropic's clients)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        tenants: Tenants,
        metrics_auth: bool = False,
        drain: Drain | None = None,
    ) -> None:
        self.app = app
        self._drain = drain
        self._tenants = tenants
        self._auth = tenants.auth
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
                extra = [(b"x-request-id", request_id)]
                calls = calls_of(state.get("call_stats"))
                if calls and calls[-1].handle:
                    # The model that served (a model group's target, an agent's model).
                    extra.append((b"x-gateway-target", calls[-1].handle.encode()))
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        sender: Send = send_with_id
        try:
            if self._drain is not None and self._drain.draining:
                raise lifecycle.refusal()
            path = scope["path"]
            # `/.well-known/` stays open so MCP clients probing for OAuth metadata get a
            # clear 404 (no OAuth here) rather than another 401.
            if (
                path not in self._open
                and not path.startswith("/.well-known/")
                and not is_console_path(path)
            ):
                caller = await self._authenticate(scope)
                if caller is not None:
                    state[CALLER_STATE] = caller
                    if caller.limited and _metered(path):
                        await self._admit(caller)
                        if caller.tpm is not None or caller.max_budget_usd is not None:
                            sender = self._charging(send_with_id, state, caller)
            reject_nul_in_url(scope)
            await self.app(scope, receive, sender)
        except errors.GatewayError as exc:
            if started:
                raise
            await send_error(sender, _with_challenge(scope, exc), scope)
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if started:
                raise
            await send_error(sender, errors.GatewayError("internal error in the gateway"), scope)

    async def _authenticate(self, scope: Scope) -> Caller | None:
        token = presented_key(scope)
        if not self._auth.required:
            # No keys configured (a loopback bind): only virtual keys are looked at, so
            # their allow-lists and limits still apply.
            if token is None or not token.startswith(SECRET_PREFIX.encode()):
                return None
        elif token is None:
            raise errors.AuthenticationError(
                "missing or invalid gateway key: send 'Authorization: Bearer <key>' "
                "(or 'x-api-key: <key>')"
            )
        return await self._auth.caller(token)

    async def _admit(self, caller: Caller) -> None:
        metrics = self._tenants.metrics
        try:
            await self._tenants.limits.admit(caller)
        except KeyLimited as exc:
            if metrics is not None:
                metrics.key_limited.labels(metrics.key_label(caller.key_name), exc.reason).inc()
            raise

    def _charging(self, send: Send, state: dict[str, Any], caller: Caller) -> Send:
        """`send`, charging the request's tokens and cost just before its last byte, so
        the key's next request already sees them."""
        charged = False

        async def send_charged(message: Message) -> None:
            nonlocal charged
            if (
                not charged
                and message["type"] == "http.response.body"
                and not message.get("more_body", False)
            ):
                charged = True
                calls = calls_of(state.get("call_stats"))
                if calls:
                    try:
                        await self._tenants.charge(caller, calls)
                    except Exception:
                        log.exception("charging key '%s' failed", caller.key_name)
            await send(message)

        return send_charged


def _metered(path: str) -> bool:
    """Paths whose requests count against a key's limits (not key and usage management)."""
    return path.startswith(("/v1/", "/mcp")) and not path.startswith(("/v1/keys", "/v1/usage"))


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
