"""The gateway's exception tree: each error knows its HTTP status, OpenAI `type` and `code`.

Services raise these; each facade renders them once (an OpenAI error body over HTTP,
an error result over MCP, a final `data: {"error": …}` frame in a started stream).
Upstream errors are mapped here from status code and structured body, never from
message text.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson


class GatewayError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    code: ClassVar[str | None] = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code  # type: ignore[misc]
        self.headers: dict[str, str] = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def json_bytes(self) -> bytes:
        return orjson.dumps(self.body())


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_value"


class InvalidJSON(InvalidRequest):
    code = "invalid_json"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class ProviderNotEnabled(NotFound):
    code = "provider_not_enabled"


class AgentNotFound(NotFound):
    """An agent is addressed like a model (`agent/<name>`), so the code is the same."""

    code = "model_not_found"


class Conflict(GatewayError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"


class AgentExists(Conflict):
    code = "agent_exists"


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"


class AuthenticationError(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    """The caller's key may not use this model, agent or tool (its allow-lists)."""

    status = 403
    type = "permission_error"
    code = "permission_denied"


class ModelNotAllowed(PermissionDenied):
    code = "model_not_allowed"


class AgentNotAllowed(PermissionDenied):
    code = "agent_not_allowed"


class ToolNotAllowed(PermissionDenied):
    code = "tool_not_allowed"


class MethodNotAllowed(GatewayError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class RequestTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RequestTimeout(GatewayError):
    """The request's head or body did not arrive in time (GATEWAY_REQUEST_READ_TIMEOUT)."""

    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class ShuttingDown(GatewayError):
    """The process is draining: a new request, or one still running at the deadline."""

    status = 503
    type = "server_error"
    code = "shutting_down"

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        # Another replica (or this one restarted) can take the retry.
        self.headers.setdefault("Retry-After", "1")
        self.headers.setdefault("Connection", "close")


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class BudgetExceeded(GatewayError):
    """The caller's key spent its `max_budget_usd` for the current budget period."""

    status = 429
    type = "insufficient_quota"
    code = "budget_exceeded"


class StoreBusy(GatewayError):
    """The agent store has no connection free in time, or refuses more: retry shortly.

    Its own 503 rather than a 500, so clients and load balancers back off and retry.
    """

    status = 503
    type = "server_error"
    code = "store_busy"
    RETRY_AFTER_SECONDS: ClassVar[int] = 1

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(
            message, param=param, headers={"Retry-After": str(self.RETRY_AFTER_SECONDS)}
        )


class UpstreamError(GatewayError):
    """Anything that went wrong talking to a provider."""

    status = 502
    type = "upstream_error"
    code = "upstream_unavailable"


class UpstreamBadRequest(UpstreamError):
    status = 400
    type = "invalid_request_error"
    code = "upstream_bad_request"


class UpstreamAuthFailed(UpstreamError):
    code = "upstream_authentication_failed"


class UpstreamRateLimited(UpstreamError):
    status = 429
    type = "rate_limit_error"
    code = "upstream_rate_limited"


class UpstreamUnavailable(UpstreamError):
    code = "upstream_unavailable"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


_CONTEXT_CODES = frozenset(
    {"context_length_exceeded", "string_above_max_length", "context_window_exceeded"}
)


def parse_error_body(raw: bytes) -> tuple[str | None, str | None, str | None]:
    """(message, code, param) from an OpenAI- or Anthropic-style error body, if it is one."""
    try:
        data = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return None, None, None
    if not isinstance(data, dict):
        return None, None, None
    err = data.get("error")
    if isinstance(err, str):
        return err, None, None
    if not isinstance(err, dict):
        return None, None, None
    message = err.get("message")
    code = err.get("code") or err.get("type")
    param = err.get("param")
    return (
        message if isinstance(message, str) else None,
        str(code) if code is not None else None,
        param if isinstance(param, str) else None,
    )


def from_upstream(
    provider: str, status: int, raw: bytes, retry_after: str | None = None
) -> GatewayError:
    """Map an upstream's non-2xx answer to our error, by status and structured body."""
    message, code, param = parse_error_body(raw)
    detail = f"{provider}: {message}" if message else f"{provider} answered HTTP {status}"
    if status in (401, 403):
        return UpstreamAuthFailed(
            f"{provider} rejected the gateway's provider key (HTTP {status}); "
            "check the provider's API key configuration"
        )
    if status == 429:
        headers = {"Retry-After": retry_after} if retry_after else None
        return UpstreamRateLimited(detail, headers=headers)
    if status == 404:
        return ModelNotFound(detail, code="model_not_found", param=param or "model")
    if status in (408, 504):
        return UpstreamTimeout(detail)
    if 400 <= status < 500:
        if status == 413 or (code in _CONTEXT_CODES):
            return UpstreamBadRequest(detail, code="context_length_exceeded", param=param)
        return UpstreamBadRequest(detail, code=code or "upstream_bad_request", param=param)
    return UpstreamUnavailable(detail)
