"""What distinguishes one OpenAI-compatible provider from another, as data.

A profile names the defaults (base URL, key variable), the built-in fallback model
list with context windows, which upstream model ids belong to the provider, and the
quirks the request must be adjusted for. The client code reads flags; it never asks
which provider it is talking to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from gateway.settings import ProviderType

ToolChoiceRequired = Literal["pass", "reject"]
# The upstream's own wire format: OpenAI chat completions, or Anthropic's Messages API.
WireName = Literal["openai-chat", "anthropic-messages"]


@dataclass(frozen=True)
class ModelRule:
    """What one family of a provider's models (ids starting with `prefixes`) requires."""

    prefixes: tuple[str, ...]
    # Sampling fields the upstream fixes and refuses other values for: left out.
    fixed_sampling: tuple[str, ...] = ()
    # One choice per request: `n` > 1 is a 400 naming the field.
    single_choice: bool = False
    # A thinking model that wants its `reasoning_content` back on earlier assistant
    # messages with tool calls (the agent loop sends it).
    resend_reasoning: bool = False


@dataclass(frozen=True)
class Profile:
    type: ProviderType
    default_base_url: str | None = None
    key_env: str | None = None
    base_url_env: str | None = None
    # The variable that sets an Anthropic-compatible Messages base URL (off when unset).
    anthropic_base_url_env: str | None = None
    # Upstream ids outside these prefixes are dropped from the live list.
    model_prefixes: tuple[str, ...] = ()
    builtin_models: MappingProxyType[str, int | None] = field(
        default_factory=lambda: MappingProxyType({})
    )
    temperature_range: tuple[float, float] | None = None
    # Some upstreams reject a low temperature when asked for several choices.
    min_temperature_multi_choice: float | None = None
    tool_choice_required: ToolChoiceRequired = "pass"
    # Ids (by prefix) that accept `response_format: {"type": "json_schema"}`; None = all.
    json_schema_prefixes: tuple[str, ...] | None = None
    # Windows of ids the fallback list leaves out (older ids a live list may still name).
    known_windows: MappingProxyType[str, int] = field(default_factory=lambda: MappingProxyType({}))
    rules: tuple[ModelRule, ...] = ()
    wire: WireName = "openai-chat"
    models_path: str = "/models"
    # Add the built-in ids to a live list (Anthropic lists dated snapshots, not aliases).
    list_builtin_aliases: bool = False
    # The context window of ids with this prefix that no list names: (prefix, tokens).
    family_window: tuple[str, int] | None = None
    # Ids (by prefix) that take OpenAI's `reasoning_effort`, so Anthropic's `thinking`
    # budget can become one; other models get no reasoning knob at all.
    reasoning_effort_prefixes: tuple[str, ...] = ()
    # The upstream's prompt token counter (Moonshot's), relative to the base URL.
    token_count_path: str | None = None
    # Whether earlier reasoning may go back as `reasoning_content` on assistant messages
    # (Kimi and DeepSeek want it); OpenAI validates message fields and refuses it.
    reasoning_history: bool = True

    def default_window(self, model: str) -> int | None:
        family = self.family_window
        return family[1] if family is not None and model.startswith(family[0]) else None

    def rule_for(self, model: str) -> ModelRule | None:
        for rule in self.rules:
            if model.startswith(rule.prefixes):
                return rule
        return None


OPENAI = Profile(
    type="openai",
    default_base_url="https://api.openai.com/v1",
    key_env="OPENAI_API_KEY",
    base_url_env="OPENAI_BASE_URL",
    builtin_models=MappingProxyType(
        {
            "gpt-4o": 128000,
            "gpt-4o-mini": 128000,
            "gpt-4.1": 1047576,
            "gpt-4.1-mini": 1047576,
            "o3-mini": 200000,
        }
    ),
    reasoning_effort_prefixes=("o1", "o3", "o4", "gpt-5"),
    reasoning_history=False,
)

KIMI = Profile(
    type="kimi",
    default_base_url="https://api.moonshot.ai/v1",
    key_env="KIMI_API_KEY",
    base_url_env="KIMI_BASE_URL",
    anthropic_base_url_env="KIMI_ANTHROPIC_BASE_URL",
    model_prefixes=("moonshot-", "kimi-"),
    # The current lineup (late 2026): the K2.x models are multimodal and think before
    # answering (`reasoning_content`), with 262,144-token windows; the K2 preview ids,
    # kimi-k2-thinking(-turbo) and kimi-latest were discontinued during 2026.
    # Sources: platform.moonshot.ai/docs/guide/use-kimi-k2-thinking-model (K2.5 thinks
    # by default, reasoning in `reasoning_content`); promptfoo.dev/docs/providers/moonshot
    # (lineup and discontinued ids); chatbase.co/blog/kimi-k2-api (K2.6 window 262,144).
    builtin_models=MappingProxyType(
        {
            "kimi-k2.6": 262144,
            "kimi-k2.5": 262144,
            "moonshot-v1-8k": 8192,
            "moonshot-v1-32k": 32768,
            "moonshot-v1-128k": 131072,
        }
    ),
    known_windows=MappingProxyType(
        {
            "kimi-k2-0905-preview": 262144,
            "kimi-k2-0711-preview": 131072,
            "kimi-k2-turbo-preview": 262144,
            "kimi-k2-thinking": 262144,
            "kimi-k2-thinking-turbo": 262144,
            "kimi-thinking-preview": 131072,
            "kimi-latest": 131072,
        }
    ),
    # Later K2.x ids a live list returns (k2.7-code, …) share the family's window.
    family_window=("kimi-k2.", 262144),
    rules=(
        # platform.kimi.ai/docs/api/models-overview ("Model Parameter Reference"): for
        # kimi-k2.5 and kimi-k2.6, temperature, top_p (0.95), n (1) and both penalties
        # (0) "cannot be modified"; other values are refused ("invalid temperature: only
        # 1 is allowed for this model"), so a client's values are left out.
        # With thinking on (their default), Moonshot refuses a history whose assistant
        # tool-call messages lack their reasoning_content ("thinking is enabled but
        # reasoning_content is missing in assistant tool call message", quoted from
        # Moonshot's docs in github.com/Kilo-Org/kilocode/pull/5544).
        ModelRule(
            prefixes=("kimi-k2.5", "kimi-k2.6"),
            fixed_sampling=("temperature", "top_p", "presence_penalty", "frequency_penalty"),
            single_choice=True,
            resend_reasoning=True,
        ),
        ModelRule(prefixes=("kimi-k2-thinking",), resend_reasoning=True),
    ),
    temperature_range=(0.0, 1.0),
    min_temperature_multi_choice=0.3,
    tool_choice_required="reject",
    json_schema_prefixes=("kimi-k2",),
    token_count_path="/tokenizers/estimate-token-count",
)

OPENAI_COMPATIBLE = Profile(type="openai-compatible")

ANTHROPIC = Profile(
    type="anthropic",
    default_base_url="https://api.anthropic.com/v1",
    key_env="ANTHROPIC_API_KEY",
    base_url_env="ANTHROPIC_BASE_URL",
    wire="anthropic-messages",
    # The API pages its model list, 20 by default; 1000 is its maximum page.
    models_path="/models?limit=1000",
    list_builtin_aliases=True,
    # Every Claude model since Claude 3 has a 200k-token window (1M is an opt-in beta),
    # so a dated snapshot id the built-in list does not name still gets its window.
    family_window=("claude-", 200_000),
    # The aliases; the live list adds the dated snapshots they point at.
    builtin_models=MappingProxyType(
        {
            "claude-opus-4-5": 200000,
            "claude-opus-4-1": 200000,
            "claude-opus-4-0": 200000,
            "claude-sonnet-4-5": 200000,
            "claude-sonnet-4-0": 200000,
            "claude-haiku-4-5": 200000,
        }
    ),
)

BY_TYPE: dict[ProviderType, Profile] = {
    "openai": OPENAI,
    "kimi": KIMI,
    "openai-compatible": OPENAI_COMPATIBLE,
    "anthropic": ANTHROPIC,
}

# Providers that exist without any configuration, enabled by their key variable.
BUILTIN: dict[str, Profile] = {"openai": OPENAI, "kimi": KIMI, "anthropic": ANTHROPIC}
