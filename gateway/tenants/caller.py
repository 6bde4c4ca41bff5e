"""`Caller`: the identity and policy of one request's key, as every service sees it.

The authentication middleware builds it once per request and stores it in the ASGI
scope's state; facades pass it to the services, which check it before they act. A
`None` list means no restriction (static `GATEWAY_API_KEYS`, or no auth at all).
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

# Where the middleware leaves the caller: `scope["state"][CALLER_STATE]`.
CALLER_STATE = "caller"


@dataclass(frozen=True)
class Caller:
    # A bounded label for metrics and logs (a virtual key's name); never the secret.
    key_name: str | None = None
    # The virtual key's id; None for static keys and unauthenticated callers.
    key_id: str | None = None
    is_admin: bool = False
    models: tuple[str, ...] | None = None  # handles, aliases or globs ("kimi/*")
    agents: tuple[str, ...] | None = None  # agent names or globs
    mcp_tools: tuple[str, ...] | None = None  # tool names or globs
    # A virtual key's limits (None = none): requests and tokens per minute, and a budget
    # in USD per `budget_period` ("daily", "monthly", or None for the key's lifetime).
    rpm: int | None = None
    tpm: int | None = None
    max_budget_usd: float | None = None
    budget_period: str | None = None

    @property
    def limited(self) -> bool:
        return self.rpm is not None or self.tpm is not None or self.max_budget_usd is not None

    def may_use_model(self, handle: str) -> bool:
        return _allowed(self.models, handle)

    def may_use_agent(self, name: str) -> bool:
        return _allowed(self.agents, name)

    def may_use_tool(self, name: str) -> bool:
        return _allowed(self.mcp_tools, name)


ANONYMOUS = Caller()


def _allowed(patterns: Iterable[str] | None, value: str) -> bool:
    if patterns is None:
        return True
    return any(fnmatchcase(value, pattern) for pattern in patterns)


def caller_of(scope: MutableMapping[str, Any]) -> Caller:
    """The request's caller; `ANONYMOUS` (no restriction) when nothing set one."""
    state = scope.get("state")
    caller = state.get(CALLER_STATE) if isinstance(state, dict) else None
    return caller if isinstance(caller, Caller) else ANONYMOUS
