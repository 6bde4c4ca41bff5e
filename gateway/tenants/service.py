"""The tenants service: keys, who is calling, their limits, and what they spent.

Built once per app beside the other services. The authentication middleware asks it
who a secret belongs to and admits limited keys' requests; finished requests come back
twice: their tokens and cost are charged to the key's limits before the reply's last
byte goes out (so the next request sees them), and the recorder's batches feed the
spend ledger and the per-key metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from gateway.agents.store import AgentStore
from gateway.providers.base import CallRecord
from gateway.settings import Settings
from gateway.tenants.auth import Authenticator
from gateway.tenants.caller import Caller
from gateway.tenants.keys import KeyStore
from gateway.tenants.limits import Charge, Limits, LocalLimits, period_start
from gateway.tenants.prices import PriceTable
from gateway.tenants.spend import SpendLedger, Tally

log = logging.getLogger("gateway.tenants")

BUDGET_GAUGE_SECONDS = 10.0


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
        self._gauges: asyncio.Task[None] | None = None
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

    @property
    def redis(self) -> Any:
        """The Redis client limits use (None without GATEWAY_REDIS_URL)."""
        return getattr(self.limits, "client", None)

    async def start(self) -> None:
        self.ledger.start()
        if self.metrics is not None:
            self._gauges = asyncio.create_task(self._refresh_budgets(), name="budgets-left")

    async def close(self) -> None:
        if self._gauges is not None:
            self._gauges.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._gauges
        try:
            await self.ledger.close()
        finally:
            await self.limits.close()

    async def _refresh_budgets(self) -> None:
        """Keep `gateway_key_budget_remaining_usd` current (a query every few seconds)."""
        while True:
            try:
                await self.update_budget_gauges()
            except Exception:
                log.exception("updating the budgets-left gauge failed")
            await asyncio.sleep(BUDGET_GAUGE_SECONDS)

    async def update_budget_gauges(self) -> None:
        now = time.time()
        keys = [k for k in await self.keys.list() if k.max_budget_usd is not None]
        live = [k for k in keys if k.usable(now)]
        spend = await self.ledger.spend_by_key_and_day([k.id for k in live])
        for key in live:
            assert key.max_budget_usd is not None
            first = period_start(key.budget_period, now)
            spent = sum(
                c for day, c in spend.get(key.id, {}).items() if first is None or day >= first
            )
            self.metrics.budget_left(key.name, max(0.0, key.max_budget_usd - spent))

    def _redis_unavailable(self) -> None:
        if self.metrics is not None:
            self.metrics.redis_unavailable.inc()

    def cost(self, call: CallRecord) -> float:
        return self.prices.call_cost(call)

    async def charge(self, caller: Caller, calls: Sequence[CallRecord]) -> None:
        """Take a finished request's tokens and cost from its key's buckets and budget."""
        tokens = sum(c.prompt_tokens + c.completion_tokens for c in calls)
        cost = sum(self.cost(c) for c in calls) if caller.max_budget_usd is not None else 0.0
        if tokens or cost:
            await self.limits.charge([Charge(caller, tokens, cost)])

    def record(self, finished: Sequence[tuple[Caller | None, Sequence[CallRecord]]]) -> None:
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
