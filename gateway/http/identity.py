"""`GET /v1/me`: who the gateway takes the caller to be, and what it may do.

Lets a client (the console, a script) adapt to its key without probing routes that
would refuse it: the admin sees keys and usage, a virtual key its own allow-lists.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.http.models import json_response
from gateway.tenants.caller import caller_of


async def me(request: Request) -> Response:
    caller = caller_of(request.scope)
    return json_response(
        {
            "object": "caller",
            "key_name": caller.key_name,
            "key_id": caller.key_id,
            "is_admin": caller.is_admin,
            "models": list(caller.models) if caller.models is not None else None,
            "agents": list(caller.agents) if caller.agents is not None else None,
            "mcp_tools": list(caller.mcp_tools) if caller.mcp_tools is not None else None,
        }
    )
