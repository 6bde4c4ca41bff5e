"""Limits kept in Redis: exact across every worker and replica sharing `GATEWAY_REDIS_URL`.

Each check is one Lua script, so it is atomic on the Redis server and costs one round
trip; buckets refill on the server's clock (`TIME`), so replicas' clocks do not
matter. A budget's spend lives in a counter per key and period; when it is missing
(first use, or Redis lost its data) the script says so, the gateway reads the period's
spend from the store and sets it, and checks again.

If Redis goes away, requests keep flowing (`GATEWAY_REDIS_FAIL_OPEN`, default on) or
are refused with 503 (off). Either way the failure is counted in a metric and logged
once; Redis is tried again after `RETRY_SECONDS`, and limits apply again as soon as
it answers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from redis import asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from gateway import errors
from gateway.tenants.caller import Caller
from gateway.tenants.limits import (
    Charge,
    SpendSource,
    budget_exceeded,
    period_end,
    period_start,
    rate_limited,
)

log = logging.getLogger("gateway.tenants")

RETRY_SECONDS = 1.0
TIMEOUT_SECONDS = 0.5

# A bucket is a hash {level, at}; it refills at `rate` per second up to `capacity`.
_REFILL = """
local function refill(key, rate, capacity, now)
  local v = redis.call('HMGET', key, 'l', 't')
  local level = tonumber(v[1])
  if level == nil then return capacity end
  return math.min(capacity, level + (now - tonumber(v[2])) * rate)
end
local function save(key, level, now, ttl_ms)
  redis.call('HSET', key, 'l', level, 't', now)
  redis.call('PEXPIRE', key, ttl_ms)
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

# KEYS: request bucket, token bucket, spend counter. ARGV: rpm, tpm, budget (0/-1: none).
# Returns {0} admitted, {1, wait} rpm, {2, wait} tpm, {3} budget spent, {4} spend unknown.
ADMIT = (
    _REFILL
    + """
local rpm, tpm, budget = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if budget >= 0 then
  local spent = redis.call('GET', KEYS[3])
  if not spent then return {4} end
  if tonumber(spent) >= budget then return {3} end
end
if tpm > 0 then
  local level = refill(KEYS[2], tpm / 60, tpm, now)
  if level <= 0 then return {2, tostring((1 - level) / (tpm / 60))} end
end
if rpm > 0 then
  local level = refill(KEYS[1], rpm / 60, rpm, now)
  if level < 1 then return {1, tostring((1 - level) / (rpm / 60))} end
  save(KEYS[1], level - 1, now, 61000)
end
return {0}
"""
)

# KEYS: token bucket, spend counter. ARGV: tpm (0: none), tokens, cost.
CHARGE = (
    _REFILL
    + """
local tpm, tokens, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if tpm > 0 and tokens > 0 then
  save(KEYS[1], refill(KEYS[1], tpm / 60, tpm, now) - tokens, now, 61000 + tokens * 60000 / tpm)
end
if cost > 0 and redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('INCRBYFLOAT', KEYS[2], cost)
end
return 0
"""
)

# KEYS: bucket. ARGV: per minute, capacity. Returns "0" or the seconds to wait.
TAKE = (
    _REFILL
    + """
local rate, capacity = tonumber(ARGV[1]) / 60, tonumber(ARGV[2])
local level = refill(KEYS[1], rate, capacity, now)
if level < 1 then return tostring((1 - level) / rate) end
save(KEYS[1], level - 1, now, math.ceil(capacity / rate * 1000) + 1000)
return '0'
"""
)


class RedisUnavailable(errors.GatewayError):
    status = 503
    type = "api_error"
    code = "limits_unavailable"


class RedisLimits:
    def __init__(
        self,
        url: str,
        spend_source: SpendSource,
        *,
        prefix: str = "gateway:",
        fail_open: bool = True,
        on_unavailable: Callable[[], None] | None = None,
    ) -> None:
        self._redis = aioredis.Redis.from_url(
            url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
        )
        self._spend_source = spend_source
        self._prefix = prefix
        self._fail_open = fail_open
        self._on_unavailable = on_unavailable
        self._admit = self._redis.register_script(ADMIT)
        self._charge = self._redis.register_script(CHARGE)
        self._take = self._redis.register_script(TAKE)
        # Monotonic time before which Redis is not tried (it just failed); 0 when healthy.
        self._down_until = 0.0
        self._down = False

    async def admit(self, caller: Caller) -> None:
        key = caller.key_id or ""
        p = self._prefix
        now = time.time()
        period = period_start(caller.budget_period, now)
        spend_key = f"{p}spend:{key}:{period or 'all'}"
        keys = [f"{p}rpm:{key}", f"{p}tpm:{key}", spend_key]
        budget = caller.max_budget_usd if caller.max_budget_usd is not None else -1
        args = [caller.rpm or 0, caller.tpm or 0, repr(float(budget))]
        for _ in range(2):
            result = await self._call(self._admit, keys, args)
            if result is None:
                return
            verdict = int(result[0])
            if verdict == 0:
                return
            if verdict == 1:
                raise rate_limited("request", caller.rpm or 0, float(result[1]))
            if verdict == 2:
                raise rate_limited("token", caller.tpm or 0, float(result[1]))
            if verdict == 3:
                raise budget_exceeded(caller)
            await self._seed(spend_key, key, period, caller.budget_period, now)

    async def _seed(
        self, spend_key: str, key: str, period: str | None, kind: str | None, now: float
    ) -> None:
        spent = await self._spend_source(key, period)
        end = period_end(kind, now)
        try:
            await self._redis.set(
                spend_key, repr(spent), nx=True, exat=int(end) + 86400 if end else None
            )
        except (RedisError, OSError) as exc:
            self._failed(exc)

    async def charge(self, charges: Sequence[Charge]) -> None:
        if not charges or time.monotonic() < self._down_until:
            return
        p = self._prefix
        now = time.time()
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for c in charges:
                    key = c.caller.key_id or ""
                    period = period_start(c.caller.budget_period, now) or "all"
                    cost = c.cost_usd if c.caller.max_budget_usd is not None else 0.0
                    await self._charge(
                        keys=[f"{p}tpm:{key}", f"{p}spend:{key}:{period}"],
                        args=[c.caller.tpm or 0, c.tokens, repr(cost)],
                        client=pipe,
                    )
                await pipe.execute()
        except NoScriptError:
            # Redis restarted and lost the scripts: the next batch loads them again.
            pass
        except (RedisError, OSError) as exc:
            self._failed(exc)
        else:
            self._recovered()

    async def take(self, bucket: str, per_minute: int, capacity: int) -> float:
        result = await self._call(
            self._take, [f"{self._prefix}ip:{bucket}"], [per_minute, capacity]
        )
        return 0.0 if result is None else float(result)

    async def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """Run a script; None when Redis is unreachable and limits fail open."""
        if time.monotonic() < self._down_until:
            return self._unavailable()
        try:
            result = await script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return self._unavailable()
        self._recovered()
        return result

    def _unavailable(self) -> None:
        if self._on_unavailable is not None:
            self._on_unavailable()
        if not self._fail_open:
            raise RedisUnavailable(
                "limits cannot be checked (Redis is unreachable); retry shortly",
                headers={"Retry-After": "1"},
            )

    def _failed(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + RETRY_SECONDS
        if not self._down:
            self._down = True
            mode = "not enforced" if self._fail_open else "refusing limited requests"
            log.error("Redis is unreachable (%s: %s); limits %s", type(exc).__name__, exc, mode)

    def _recovered(self) -> None:
        if self._down:
            self._down = False
            log.warning("Redis answers again; limits enforced across replicas")

    @property
    def client(self) -> aioredis.Redis:
        """The connection pool, for others who share state through the same Redis."""
        return self._redis

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()
