"""Model groups' ordering and cooldowns (in process and in Redis), without HTTP."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import redis.asyncio as aioredis

from gateway.routing.groups import Group, LocalCooldowns, RedisCooldowns
from gateway.settings import ModelGroupConfig
from tests.tenants.conftest import REDIS_URL


def _group(**kw: object) -> Group:
    config = ModelGroupConfig.model_validate({"targets": ["a/1", "b/2", "c/3"], **kw})
    return Group.from_config("g", config)


def test_fallback_keeps_the_order_and_puts_resting_targets_last() -> None:
    group = _group()
    assert group.order(set()) == ["a/1", "b/2", "c/3"]
    assert group.order({"a/1"}) == ["b/2", "c/3", "a/1"]


def test_balance_spreads_first_tries_by_weight() -> None:
    group = _group(strategy="balance", weights=[6, 3, 1])
    rng = random.Random(7)
    firsts = Counter(group.order(set(), rng)[0] for _ in range(10_000))
    assert firsts["a/1"] > firsts["b/2"] > firsts["c/3"] > 500
    assert sorted(group.order(set(), rng)) == ["a/1", "b/2", "c/3"]


def test_weights_must_match_the_targets() -> None:
    with pytest.raises(ValueError, match="one weight per target"):
        ModelGroupConfig(targets=["a/1", "b/2"], weights=[1.0])


@pytest.mark.parametrize("shared", [False, True])
async def test_failures_in_a_row_start_a_rest(shared: bool, redis_prefix: str) -> None:
    group = _group(failures=2, cooldown_s=30)
    changes: list[tuple[str, str, bool]] = []
    client = aioredis.Redis.from_url(REDIS_URL) if shared else None
    cooldowns = (
        RedisCooldowns(client, redis_prefix, lambda *c: changes.append(c))
        if client is not None
        else LocalCooldowns(lambda *c: changes.append(c))
    )
    assert not await cooldowns.failed(group, "a/1")
    await cooldowns.succeeded(group, "a/1")  # a success in between resets the count
    assert not await cooldowns.failed(group, "a/1")
    assert await cooldowns.failed(group, "a/1")
    assert await cooldowns.cooling(group) == {"a/1"}
    assert changes == [("g", "a/1", True)]
    # Some of the 30 s rest is left (a stalled machine may have used up a few seconds).
    assert 0 < cooldowns.snapshot()["g"]["a/1"] <= 30
    if client is not None:
        # Another replica sees the rest through Redis.
        other = RedisCooldowns(client, redis_prefix)
        assert await other.cooling(group) == {"a/1"}
        await client.aclose()
