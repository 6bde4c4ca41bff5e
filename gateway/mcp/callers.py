"""The key behind an MCP request, as the tools see it.

Over HTTP our middleware has put a `Caller` in the request's scope; over stdio there is
no key and no restriction (whoever starts the process owns it).
"""

from __future__ import annotations

from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context

from gateway.tenants.caller import ANONYMOUS, Caller, caller_of


def context_caller(ctx: ServerRequestContext[Any] | None) -> Caller:
    """The caller of a low-level request context (list and call handlers)."""
    request = ctx.request if ctx is not None else None
    scope = getattr(request, "scope", None)
    return caller_of(scope) if isinstance(scope, dict) else ANONYMOUS


def request_caller(ctx: Context[Any, Any] | None) -> Caller:
    """The caller of the HTTP request that carried this MCP call (stdio: no restriction)."""
    try:
        request_context = ctx.request_context if ctx is not None else None
    except ValueError:  # outside a request
        return ANONYMOUS
    return context_caller(request_context)
