"""Build the providers (transport + wire format) from settings and the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr

from gateway.providers.base import AttemptHook, ProviderSpec
from gateway.providers.profiles import BUILTIN, BY_TYPE, WireName
from gateway.providers.provider import Provider
from gateway.providers.transport import Auth, Transport
from gateway.providers.wires import WIRES
from gateway.settings import ConfigError, ProviderConfig, Settings, check_base_url, env_flag


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
        specs[name] = _spec(config, env, settings.config_file)
    for name, config in configured.items():
        specs[name] = _spec(config, env, settings.config_file)
    return specs


def _spec(
    config: ProviderConfig, env: Mapping[str, str], config_file: Path | None = None
) -> ProviderSpec:
    profile = BY_TYPE[config.type]
    key_env = (
        config.api_key_env or profile.key_env or f"{config.name.upper().replace('-', '_')}_API_KEY"
    )
    in_file = f"[[providers]] '{config.name}' in {config_file or 'the config'}"
    from_env = env.get(profile.base_url_env) if profile.base_url_env else None
    base_url: str | None
    if from_env:
        base_url, where = from_env, str(profile.base_url_env)
    else:
        base_url = config.base_url or profile.default_base_url
        where = f"base_url of {in_file}"
    if not base_url:
        raise ConfigError(f"{where}: required for an {config.type} provider")
    check_base_url(base_url, where)
    anthropic_env = profile.anthropic_base_url_env
    anthropic_url = (anthropic_env and env.get(anthropic_env)) or config.anthropic_base_url
    if anthropic_url:
        env_set = bool(anthropic_env and env.get(anthropic_env))
        where = str(anthropic_env) if env_set else f"anthropic_base_url of {in_file}"
        check_base_url(anthropic_url, where)
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
        key_env=key_env,
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
        anthropic_base_url=anthropic_url or None,
    )


def check_aliases(
    aliases: Mapping[str, str],
    specs: Mapping[str, ProviderSpec],
    config_file: Path | None = None,
) -> None:
    """An alias whose target names a provider that does not exist stops start-up."""
    for alias, target in aliases.items():
        provider, sep, _ = target.partition("/")
        if sep and provider != "agent" and provider not in specs:
            known = ", ".join(sorted(specs))
            raise ConfigError(
                f"[aliases] {alias} = '{target}' in {config_file or 'the config'}: "
                f"no provider named '{provider}' (known: {known})"
            )


def build_providers(
    specs: Mapping[str, ProviderSpec], *, on_attempt: AttemptHook | None = None
) -> dict[str, Provider]:
    """One provider (pooled transport + wire format) per enabled spec."""
    providers: dict[str, Provider] = {}
    for name, spec in specs.items():
        if not spec.enabled:
            continue
        wire = WIRES[spec.profile.wire]
        auth: Auth = "anthropic" if wire.name == "anthropic-messages" else "bearer"
        transport = Transport(spec, auth=auth, on_attempt=on_attempt)
        native: dict[WireName, Transport] = {}
        if spec.anthropic_base_url and wire.name != "anthropic-messages":
            native["anthropic-messages"] = Transport(
                spec, base_url=spec.anthropic_base_url, auth="anthropic", on_attempt=on_attempt
            )
        providers[name] = Provider(spec, wire, transport, native)
    return providers
