"""The tenants service: keys, who is calling, their limits, and what they spent.

Built once per app beside the other services. The authentication middleware asks it
who a secret belongs to and admits limited keys' requests; finished requests come back
twice: their tokens and cost are charged to the key's limits before the reply's last
byte goes out (so the next request sees them), and the recorder's batches feed the
spend ledger and the per-key metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from gateway.agents.store import AgentStore
from gateway.providers.base import CallStats
from gateway.settings import Settings
from gateway.tenants.auth import Authenticator
from gateway.tenants.caller import Caller
from gateway.tenants.keys import KeyStore
from gateway.tenants.limits import Charge, Limits, LocalLimits
from gateway.tenants.prices import PriceTable
from gateway.tenants.spend import SpendLedger, Tally

log = logging.getLogger("gateway.tenants")


class Tenants:
    def __init__(self, settings: Settings, store: AgentStore, metrics: Any = None) -> None:
        self.keys = KeyStore(store)
        self.auth = Authenticator(
            self.keys,
            static_keys=[k.get_secret_value() for k in settings.api_keys],
            admin_key=settings.admin_key.get_secret_value() if settings.admin_key else None,
        )
        self.prices = PriceTable(settings.prices)
        self.ledger = SpendLedger(store, settings.spend_flush_seconds)
        self.metrics = metrics
        self.shared = bool(settings.redis_url)
        self.limits: Limits
        if settings.redis_url:
            from gateway.tenants.redis_limits import RedisLimits

            self.limits = RedisLimits(
                settings.redis_url,
                self.ledger.period_spend,
                prefix=settings.redis_prefix,
                fail_open=settings.redis_fail_open,
                on_unavailable=self._redis_unavailable,
            )
        else:
            self.limits = LocalLimits(self.ledger.period_spend)

    async def start(self) -> None:
        self.ledger.start()

    async def close(self) -> None:
        try:
            await self.ledger.close()
        finally:
            await self.limits.close()

    def _redis_unavailable(self) -> None:
        if self.metrics is not None:
            self.metrics.redis_unavailable.inc()

    def cost(self, call: CallStats) -> float:
        return self.prices.call_cost(call)

    async def charge(self, caller: Caller, calls: Sequence[CallStats]) -> None:
        """Take a finished request's tokens and cost from its key's buckets and budget."""
        tokens = sum(c.prompt_tokens + c.completion_tokens for c in calls)
        cost = sum(self.cost(c) for c in calls) if caller.max_budget_usd is not None else 0.0
        if tokens or cost:
            await self.limits.charge([Charge(caller, tokens, cost)])

    def record(self, finished: Sequence[tuple[Caller | None, Sequence[CallStats]]]) -> None:
        """Fold a batch of finished requests' calls into the spend ledger (and metrics)."""
        for caller, calls in finished:
            key_id = caller.key_id if caller is not None and caller.key_id else ""
            key_name = caller.key_name if caller is not None else None
            for call in calls:
                if call.attempts == 0 and not call.prompt_tokens and not call.completion_tokens:
                    continue  # never reached a provider
                cost = self.cost(call)
                handle = f"{call.provider}/{call.model}"
                self.ledger.add(
                    key_id,
                    handle,
                    Tally(1, call.prompt_tokens, call.completion_tokens, call.cached_tokens, cost),
                )
                if self.metrics is not None:
                    self.metrics.record_spend(key_name, call, cost)
