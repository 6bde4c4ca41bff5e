"""What a call cost: prices per million tokens by handle, built in and from the config.

Input tokens the provider served from its cache are priced at its cached rate;
reasoning tokens are part of the completion tokens and, as OpenAI and Moonshot bill
them, priced as output unless a price says otherwise. A model without a price costs 0
(and is counted, so the usage report shows its tokens). `[prices."handle"]` in the
config adds or overrides a price; a handle ending in `*` prices every model it matches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase

from gateway.providers.base import CallRecord
from gateway.settings import PriceConfig

Price = PriceConfig


def _p(inp: float, out: float, cached: float | None = None) -> Price:
    return Price(input_per_mtok=inp, output_per_mtok=out, cached_input_per_mtok=cached)


# OpenAI: platform.openai.com/docs/pricing (standard tier, USD per 1M tokens: input,
# output, cached input), as republished with the date checked by deploybase.ai
# (March 2026) and tokenmath.io (June 2026).
_OPENAI = {
    "gpt-4o": _p(2.50, 10.00, 1.25),
    "gpt-4o-mini": _p(0.15, 0.60, 0.075),
    "gpt-4.1": _p(2.00, 8.00, 0.50),
    "gpt-4.1-mini": _p(0.40, 1.60, 0.10),
    "gpt-4.1-nano": _p(0.10, 0.40, 0.025),
    "o3": _p(2.00, 8.00, 0.50),
    "o3-mini": _p(1.10, 4.40, 0.55),
    "o4-mini": _p(1.10, 4.40, 0.275),
    "gpt-5": _p(1.25, 10.00, 0.125),
    "gpt-5-mini": _p(0.25, 2.00, 0.025),
    "gpt-5-nano": _p(0.05, 0.40, 0.005),
}

# Moonshot: platform.moonshot.ai/docs/pricing/chat (international, USD per 1M tokens,
# tax included; input on a cache miss, output, input on a cache hit), archived March
# 2026. moonshot-v1 tiers and kimi-latest (priced at its 128k tier, the most it can
# cost) as listed by agentsapis.com's Kimi pricing guide (February 2026); K2 thinking
# and turbo as listed by lavapayments.com's Moonshot provider page; K2.6 by
# developer.puter.com's Kimi pricing breakdown (June 2026).
_KIMI = {
    "kimi-k2-0905-preview": _p(0.60, 2.50, 0.15),
    "kimi-k2-0711-preview": _p(0.60, 2.50, 0.15),
    "kimi-k2-turbo-preview": _p(1.15, 8.00, 0.15),
    "kimi-k2-thinking": _p(0.60, 2.50, 0.15),
    "kimi-k2.5": _p(0.60, 3.00, 0.10),
    "kimi-k2.6": _p(0.95, 4.00, 0.16),
    "moonshot-v1-8k": _p(0.20, 2.00),
    "moonshot-v1-32k": _p(1.00, 3.00),
    "moonshot-v1-128k": _p(2.00, 5.00),
    "kimi-latest": _p(2.00, 5.00, 0.15),
}

BUILTIN: dict[str, Price] = {
    **{f"openai/{m}": p for m, p in _OPENAI.items()},
    **{f"kimi/{m}": p for m, p in _KIMI.items()},
}


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0


class PriceTable:
    def __init__(self, configured: Mapping[str, Price] | None = None) -> None:
        self._exact: dict[str, Price] = dict(BUILTIN)
        self._globs: list[tuple[str, Price]] = []
        for handle, price in (configured or {}).items():
            if "*" in handle or "?" in handle:
                self._globs.append((handle, price))
            else:
                self._exact[handle] = price

    def price(self, handle: str) -> Price | None:
        found = self._exact.get(handle)
        if found is not None:
            return found
        for pattern, price in self._globs:
            if fnmatchcase(handle, pattern):
                return price
        return None

    def cost(self, handle: str, usage: Usage) -> float:
        price = self.price(handle)
        if price is None:
            return 0.0
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        reasoning = min(usage.reasoning_tokens, usage.completion_tokens)
        cached_rate = price.cached_input_per_mtok
        if cached_rate is None:
            cached_rate = price.input_per_mtok
        reasoning_rate = price.reasoning_per_mtok
        if reasoning_rate is None:
            reasoning_rate = price.output_per_mtok
        total = (
            (usage.prompt_tokens - cached) * price.input_per_mtok
            + cached * cached_rate
            + (usage.completion_tokens - reasoning) * price.output_per_mtok
            + reasoning * reasoning_rate
        )
        return total / 1_000_000

    def call_cost(self, call: CallRecord) -> float:
        return self.cost(f"{call.provider}/{call.model}", usage_of(call))


def usage_of(call: CallRecord) -> Usage:
    return Usage(
        call.prompt_tokens,
        call.completion_tokens,
        call.cached_tokens,
        call.reasoning_tokens,
    )
