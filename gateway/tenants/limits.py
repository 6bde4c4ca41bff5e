"""Limits: a key's requests and tokens per minute and its budget, and the per-address limit.

Every limit is a token bucket that refills continuously (`rate` per second up to
`capacity`): a key's `rpm` is a bucket of `rpm` requests, its `tpm` a bucket of `tpm`
tokens. A request is admitted while the request bucket holds one and the token bucket
is not in debt; the tokens a reply used are taken afterwards (they are not known
before), so a key may overshoot its `tpm` by one request's tokens, never more. The
budget compares the period's spend with `max_budget_usd` the same way.

`LocalLimits` keeps everything in this process (with N workers or replicas each one
allows the full limit); `RedisLimits` (`redis_limits.py`) keeps it in Redis, exact
across every process that shares `GATEWAY_REDIS_URL`. Both take the period's spend so
far from the store the first time a key's budget is checked, so budgets survive
restarts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from cachetools import TTLCache

from gateway import errors
from gateway.tenants.caller import Caller

# The period's spend recorded in the store so far: (key id, first day of the period).
SpendSource = Callable[[str, str | None], Awaitable[float]]


@dataclass(frozen=True)
class Charge:
    """What one finished request of a virtual key cost, for its buckets and budget."""

    caller: Caller
    tokens: int
    cost_usd: float


def period_start(period: str | None, now: float) -> str | None:
    """The first UTC day (YYYY-MM-DD) of the budget period that contains `now`."""
    if period is None:
        return None
    day = datetime.fromtimestamp(now, UTC)
    if period == "monthly":
        return day.strftime("%Y-%m-01")
    return day.strftime("%Y-%m-%d")


def period_end(period: str | None, now: float) -> float | None:
    """Unix time at which the period containing `now` ends (None: never)."""
    if period is None:
        return None
    day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "monthly":
        month = day.replace(day=1)
        nxt = month.replace(year=month.year + 1, month=1) if month.month == 12 else None
        nxt = nxt or month.replace(month=month.month + 1)
        return nxt.timestamp()
    return day.timestamp() + 86400


class KeyRateLimited(errors.RateLimited):
    """A key's rpm or tpm; `reason` labels the metric of refused requests."""

    def __init__(self, message: str, *, reason: str, headers: dict[str, str]) -> None:
        super().__init__(message, headers=headers)
        self.reason = reason


class KeyBudgetExceeded(errors.BudgetExceeded):
    reason = "budget"


KeyLimited = (KeyRateLimited, KeyBudgetExceeded)


def rate_limited(what: str, limit: int, wait: float) -> KeyRateLimited:
    retry = str(max(1, math.ceil(wait)))
    unit = "requests" if what == "request" else "tokens"
    return KeyRateLimited(
        f"key limit of {limit} {unit} per minute exceeded; retry in {retry} s",
        reason="rpm" if what == "request" else "tpm",
        headers={"Retry-After": retry},
    )


def budget_exceeded(caller: Caller) -> KeyBudgetExceeded:
    period = {"daily": " for today", "monthly": " for this month"}.get(
        caller.budget_period or "", ""
    )
    return KeyBudgetExceeded(
        f"key '{caller.key_name}' has spent its budget of ${caller.max_budget_usd:g}{period}"
    )


class Limits(Protocol):
    async def admit(self, caller: Caller) -> None:
        """Count one request of a limited key, or raise 429 (rate or budget)."""

    async def charge(self, charges: Sequence[Charge]) -> None:
        """Take finished requests' tokens and cost from their keys' buckets and budgets."""

    async def take(self, bucket: str, per_minute: int, capacity: int) -> float:
        """Take one request from a named bucket: 0, or the seconds until one is free."""

    async def close(self) -> None: ...


class _Bucket:
    __slots__ = ("last", "level")

    def __init__(self, level: float, last: float) -> None:
        self.level = level
        self.last = last

    def refill(self, rate: float, capacity: float, now: float) -> float:
        self.level = min(capacity, self.level + (now - self.last) * rate)
        self.last = now
        return self.level


class LocalLimits:
    """Every bucket and budget in this process's memory."""

    def __init__(self, spend_source: SpendSource) -> None:
        self._spend_source = spend_source
        # Idle buckets are full again after a minute; dropping them then changes nothing.
        self._buckets: TTLCache[str, _Bucket] = TTLCache(maxsize=200_000, ttl=120)
        # (key id, period start) -> spend; seeded from the store once per period.
        self._spend: TTLCache[tuple[str, str | None], float] = TTLCache(
            maxsize=100_000, ttl=86400 * 32
        )

    def _bucket(self, name: str, capacity: float, now: float) -> _Bucket:
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = self._buckets[name] = _Bucket(capacity, now)
        return bucket

    async def admit(self, caller: Caller) -> None:
        key = caller.key_id or ""
        if caller.max_budget_usd is not None:
            slot = (key, period_start(caller.budget_period, time.time()))
            spent = self._spend.get(slot)
            if spent is None:
                spent = self._spend[slot] = await self._spend_source(key, slot[1])
            if spent >= caller.max_budget_usd:
                raise budget_exceeded(caller)
        now = time.monotonic()
        if caller.tpm is not None:
            rate = caller.tpm / 60.0
            level = self._bucket("tpm:" + key, caller.tpm, now).refill(rate, caller.tpm, now)
            if level <= 0:
                raise rate_limited("token", caller.tpm, (1 - level) / rate)
        if caller.rpm is not None:
            wait = self._take("rpm:" + key, caller.rpm / 60.0, caller.rpm, now)
            if wait:
                raise rate_limited("request", caller.rpm, wait)

    async def charge(self, charges: Sequence[Charge]) -> None:
        now = time.monotonic()
        for charge in charges:
            caller, key = charge.caller, charge.caller.key_id or ""
            if caller.tpm is not None and charge.tokens:
                bucket = self._bucket("tpm:" + key, caller.tpm, now)
                bucket.refill(caller.tpm / 60.0, caller.tpm, now)
                bucket.level -= charge.tokens
            if caller.max_budget_usd is not None and charge.cost_usd:
                slot = (key, period_start(caller.budget_period, time.time()))
                if slot in self._spend:
                    self._spend[slot] += charge.cost_usd

    async def take(self, bucket: str, per_minute: int, capacity: int) -> float:
        return self._take(bucket, per_minute / 60.0, capacity, time.monotonic())

    def _take(self, name: str, rate: float, capacity: float, now: float) -> float:
        bucket = self._bucket(name, capacity, now)
        level = bucket.refill(rate, capacity, now)
        if level < 1.0:
            return (1.0 - level) / rate
        bucket.level = level - 1.0
        return 0.0

    async def close(self) -> None:
        return None
