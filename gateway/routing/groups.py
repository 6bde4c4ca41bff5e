"""Model groups: one model name over several targets, with fallbacks, balancing, cooldowns.

`[models.<name>]` in the config names `targets` (handles or aliases), a `strategy`
(`fallback`: in order; `balance`: spread by `weights`, the others as fallbacks), and
when a target rests: after `failures` retryable failures in a row it is skipped for
`cooldown_s`. Cooling targets are tried last rather than never, so a group whose every
target is cooling still answers if one recovered. With Redis the failure counts and
cooldowns are shared by every replica (`RedisCooldowns`); without, each process keeps
its own (`LocalCooldowns`).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gateway import errors
from gateway.settings import ModelGroupConfig

log = logging.getLogger("gateway.routing")

# Failures that a different target may not have: the next one is worth trying.
RETRYABLE = (errors.UpstreamRateLimited, errors.UpstreamUnavailable, errors.UpstreamTimeout)


def retryable(exc: BaseException) -> bool:
    return isinstance(exc, RETRYABLE)


@dataclass(frozen=True)
class Group:
    name: str
    targets: tuple[str, ...]
    strategy: str
    weights: tuple[float, ...]
    failures: int
    cooldown_s: float

    @classmethod
    def from_config(cls, name: str, config: ModelGroupConfig) -> Group:
        weights = tuple(config.weights) if config.weights else (1.0,) * len(config.targets)
        return cls(
            name,
            tuple(config.targets),
            config.strategy,
            weights,
            config.failures,
            config.cooldown_s,
        )

    def order(self, cooling: set[str], rng: random.Random | None = None) -> list[str]:
        """The targets to try, in order: resting ones last."""
        if self.strategy == "balance":
            ordered = _weighted_shuffle(self.targets, self.weights, rng or random.Random())
        else:
            ordered = list(self.targets)
        return [t for t in ordered if t not in cooling] + [t for t in ordered if t in cooling]


def _weighted_shuffle(
    items: Sequence[str], weights: Sequence[float], rng: random.Random
) -> list[str]:
    # Efraimidis-Spirakis: each item's key u^(1/w); sorting by it draws without replacement.
    pairs = zip(items, weights, strict=True)
    keyed = [(rng.random() ** (1.0 / w) if w > 0 else 0.0, item) for item, w in pairs]
    return [item for _, item in sorted(keyed, reverse=True)]


class Cooldowns(Protocol):
    async def cooling(self, group: Group) -> set[str]:
        """The group's targets resting now."""

    async def failed(self, group: Group, target: str) -> bool:
        """Count a retryable failure; True if the target starts resting now."""

    async def succeeded(self, group: Group, target: str) -> None: ...

    def snapshot(self) -> dict[str, dict[str, float]]:
        """group -> target -> seconds of rest left, as this process last saw them."""


class LocalCooldowns:
    def __init__(self, on_change: Callable[[str, str, bool], None] | None = None) -> None:
        self._failures: dict[tuple[str, str], int] = {}
        self._until: dict[tuple[str, str], float] = {}
        self._on_change = on_change

    async def cooling(self, group: Group) -> set[str]:
        now = time.monotonic()
        out = set()
        for target in group.targets:
            until = self._until.get((group.name, target))
            if until is None:
                continue
            if until > now:
                out.add(target)
            else:
                del self._until[(group.name, target)]
                self._notify(group.name, target, False)
        return out

    async def failed(self, group: Group, target: str) -> bool:
        slot = (group.name, target)
        count = self._failures.get(slot, 0) + 1
        if count >= group.failures:
            self._failures.pop(slot, None)
            self._until[slot] = time.monotonic() + group.cooldown_s
            self._notify(group.name, target, True)
            return True
        self._failures[slot] = count
        return False

    async def succeeded(self, group: Group, target: str) -> None:
        self._failures.pop((group.name, target), None)

    def snapshot(self) -> dict[str, dict[str, float]]:
        now = time.monotonic()
        out: dict[str, dict[str, float]] = {}
        for (group, target), until in self._until.items():
            if until > now:
                out.setdefault(group, {})[target] = round(until - now, 1)
        return out

    def _notify(self, group: str, target: str, cooling: bool) -> None:
        if self._on_change is not None:
            self._on_change(group, target, cooling)


class ModelGroups:
    """The configured groups and where their rests are kept."""

    def __init__(self, groups: dict[str, Group], cooldowns: Cooldowns) -> None:
        self.groups = groups
        self.cooldowns = cooldowns

    def get(self, name: str) -> Group | None:
        return self.groups.get(name)

    async def resting(self) -> dict[str, list[str]]:
        """group -> its targets resting now (asks Redis when the rests are shared)."""
        out: dict[str, list[str]] = {}
        for group in self.groups.values():
            cooling = await self.cooldowns.cooling(group)
            if cooling:
                out[group.name] = [t for t in group.targets if t in cooling]
        return out


# KEYS: failure counter, cooldown flag. ARGV: failures, cooldown ms.
# Returns 1 when this failure starts the target's rest.
_FAILED = """
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], 600000)
if n >= tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
  return 1
end
return 0
"""


class RedisCooldowns(LocalCooldowns):
    """Shared through Redis; the local state answers while Redis cannot."""

    def __init__(
        self, client: Any, prefix: str, on_change: Callable[[str, str, bool], None] | None = None
    ) -> None:
        super().__init__(on_change)
        self._redis = client
        self._prefix = prefix
        self._script = client.register_script(_FAILED)

    def _keys(self, group: str, target: str) -> tuple[str, str]:
        base = f"{self._prefix}group:{group}:{target}"
        return base + ":failures", base + ":cooldown"

    async def cooling(self, group: Group) -> set[str]:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for target in group.targets:
                    pipe.pttl(self._keys(group.name, target)[1])
                ttls = await pipe.execute()
        except Exception:
            return await super().cooling(group)
        now = time.monotonic()
        out = set()
        for target, ttl in zip(group.targets, ttls, strict=True):
            slot = (group.name, target)
            if ttl is not None and ttl > 0:
                out.add(target)
                if slot not in self._until:
                    self._notify(group.name, target, True)
                self._until[slot] = now + ttl / 1000
            elif self._until.pop(slot, None) is not None:
                self._notify(group.name, target, False)
        return out

    async def failed(self, group: Group, target: str) -> bool:
        failures, cooldown = self._keys(group.name, target)
        try:
            started = await self._script(
                keys=[failures, cooldown], args=[group.failures, int(group.cooldown_s * 1000)]
            )
        except Exception:
            return await super().failed(group, target)
        if int(started):
            self._until[(group.name, target)] = time.monotonic() + group.cooldown_s
            self._notify(group.name, target, True)
            return True
        return False

    async def succeeded(self, group: Group, target: str) -> None:
        await super().succeeded(group, target)
        try:
            await self._redis.delete(self._keys(group.name, target)[0])
        except Exception:
            pass
