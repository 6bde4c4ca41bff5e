"""Build the provider clients from settings and the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import SecretStr

from gateway.providers.anthropic import AnthropicClient
from gateway.providers.base import ProviderSpec
from gateway.providers.openai_compat import OpenAICompatibleClient
from gateway.providers.profiles import BUILTIN, BY_TYPE
from gateway.settings import ConfigError, ProviderConfig, ProviderType, Settings, env_flag

# Provider types whose wire format is not OpenAI's; every other type is OpenAI-compatible.
_CLIENT_TYPES: dict[ProviderType, type[OpenAICompatibleClient]] = {"anthropic": AnthropicClient}


def disable_var(name: str) -> str:
    return f"GATEWAY_DISABLE_{name.upper().replace('-', '_')}_PROVIDER"


def provider_specs(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> dict[str, ProviderSpec]:
    """Built-in providers plus those of the config file (which may override built-ins)."""
    env = os.environ if environ is None else environ
    configured = {p.name: p for p in settings.providers}
    specs: dict[str, ProviderSpec] = {}
    for name, profile in BUILTIN.items():
        config = configured.pop(name, ProviderConfig(name=name, type=profile.type))
        specs[name] = _spec(config, env)
    for name, config in configured.items():
        specs[name] = _spec(config, env)
    return specs


def _spec(config: ProviderConfig, env: Mapping[str, str]) -> ProviderSpec:
    profile = BY_TYPE[config.type]
    key_env = (
        config.api_key_env or profile.key_env or f"{config.name.upper().replace('-', '_')}_API_KEY"
    )
    base_url = (profile.base_url_env and env.get(profile.base_url_env)) or config.base_url
    base_url = base_url or profile.default_base_url
    if not base_url:
        raise ConfigError(
            f"providers.{config.name}.base_url: required for an {config.type} provider"
        )
    key = env.get(key_env, "").strip()
    disabled = env_flag(env, disable_var(config.name))
    if disabled:
        reason = f"provider '{config.name}' is disabled by {disable_var(config.name)}"
    elif not key:
        reason = f"provider '{config.name}' is not enabled: set {key_env}"
    else:
        reason = ""
    return ProviderSpec(
        name=config.name,
        profile=profile,
        base_url=base_url,
        api_key=SecretStr(key) if key else None,
        enabled=not reason,
        disabled_reason=reason,
        static_models=tuple(config.models) if config.models is not None else None,
        context_windows=dict(config.context_windows),
        connect_timeout=config.connect_timeout,
        read_timeout=config.read_timeout,
        max_connections=config.max_connections,
        models_ttl=config.models_ttl,
        max_attempts=config.max_attempts,
        retry_base_delay=config.retry_base_delay,
    )


def build_clients(specs: Mapping[str, ProviderSpec]) -> dict[str, OpenAICompatibleClient]:
    """One pooled client per enabled provider."""
    clients: dict[str, OpenAICompatibleClient] = {}
    for name, spec in specs.items():
        if not spec.enabled:
            continue
        client_type = _CLIENT_TYPES.get(spec.profile.type, OpenAICompatibleClient)
        clients[name] = client_type(spec)
    return clients
