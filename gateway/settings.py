"""One typed settings object, read from the environment and the TOML config file.

Environment variables win over the file. Provider keys are read from the variables
the contract names (`KIMI_API_KEY`, …) or from the variable a configured provider
names in `api_key_env`; they are kept as `SecretStr` so they never print.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

ProviderType = Literal["openai", "kimi", "openai-compatible", "anthropic"]
DEFAULT_CONFIG = Path("config/gateway.toml")


class ConfigError(Exception):
    """The configuration cannot be used; the message names the field."""


class ProviderConfig(BaseModel):
    """A provider as the config file describes it (built-ins may be overridden by name)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    type: ProviderType = "openai-compatible"
    base_url: str | None = None
    api_key_env: str | None = None
    models: list[str] | None = None
    context_windows: dict[str, int] = Field(default_factory=dict)
    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=600.0, gt=0)
    max_connections: int = Field(default=1000, ge=1)
    models_ttl: float = Field(default=300.0, ge=0)
    max_attempts: int = Field(default=3, ge=1, le=10)
    retry_base_delay: float = Field(default=0.5, ge=0)
    # An Anthropic-compatible Messages endpoint of an OpenAI-wire provider (Moonshot:
    # https://api.moonshot.ai/anthropic/v1); `/v1/messages` then goes there natively.
    anthropic_base_url: str | None = None


class McpServerConfig(BaseModel):
    """An MCP server whose tools agents may use: `url` (Streamable HTTP) or `command` (stdio)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    timeout: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerConfig:
        if (self.url is None) == (self.command is None):
            raise ValueError(f"mcp server '{self.name}': set exactly one of 'url' or 'command'")
        return self


class PriceConfig(BaseModel):
    """`[prices."handle"]`: USD per million tokens (cached input and reasoning optional)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)
    cached_input_per_mtok: float | None = Field(default=None, ge=0)
    reasoning_per_mtok: float | None = Field(default=None, ge=0)


class ModelGroupConfig(BaseModel):
    """`[models.<name>]`: a model name served by several targets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    targets: list[str] = Field(min_length=1)
    strategy: Literal["fallback", "balance"] = "fallback"
    weights: list[float] | None = None
    failures: int = Field(default=3, ge=1, le=1000)
    cooldown_s: float = Field(default=30.0, ge=0, le=86400)

    @model_validator(mode="after")
    def _weights_match(self) -> ModelGroupConfig:
        if self.weights is not None:
            if len(self.weights) != len(self.targets):
                raise ValueError("'weights' must have one weight per target")
            if any(w <= 0 for w in self.weights):
                raise ValueError("'weights' must be positive")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    workers: int = Field(default=1, ge=1)
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    data_dir: Path = Path("data")
    database_url: str | None = None
    # Connections per process to the agent store; PostgreSQL adds one for turn locks.
    database_pool_size: int = Field(default=10, ge=1, le=1000)
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    default_model: str | None = None
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"
    metrics_auth: bool = False
    # Requests per minute per gateway key (or client address without keys); 0 = off.
    rate_limit_rpm: int = Field(default=0, ge=0)
    rate_limit_burst: int | None = Field(default=None, ge=1)
    agent_max_steps: int = Field(default=10, ge=1, le=100)
    # Seconds in-flight requests, streams and agent turns get after SIGTERM.
    shutdown_grace: float = Field(default=30.0, ge=0, le=3600)
    # Seconds a request's head and body may take to arrive before the connection is dropped.
    request_read_timeout: float = Field(default=30.0, gt=0, le=3600)
    # Session-based (2025-11-25) MCP clients: a session idle this long is closed, and no
    # more than this many are open at once (each pins about 38 KB).
    mcp_session_idle_timeout: float = Field(default=600.0, gt=0, le=86400)
    mcp_max_sessions: int = Field(default=1000, ge=1, le=100_000)
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    providers: list[ProviderConfig] = Field(default_factory=list)
    aliases: dict[str, str] = Field(default_factory=dict)
    mcp_servers: list[McpServerConfig] = Field(default_factory=list)
    # Tenants: the admin key guards /v1/keys and /v1/usage; Redis shares limits.
    admin_key: SecretStr | None = None
    redis_url: str | None = None
    redis_prefix: str = Field(default="gateway:", min_length=1, max_length=64)
    # When Redis is unreachable: true lets requests through without limits.
    redis_fail_open: bool = True
    # How often aggregated spend is written to the store (the most a crash can lose).
    spend_flush_seconds: float = Field(default=2.0, gt=0, le=3600)
    prices: dict[str, PriceConfig] = Field(default_factory=dict)
    # Model groups: a name clients use like a model, over several targets.
    models: dict[str, ModelGroupConfig] = Field(default_factory=dict)

    @field_validator("api_keys", "allowed_hosts", "allowed_origins", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init kwargs; the environment overrides them.
        return (env_settings, init_settings)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'gateway.db').resolve()}"


def load_settings(config_path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Read the TOML file (explicit, `GATEWAY_CONFIG`, or the default if present) and env.

    `overrides` (the command line's `--host`, `--port`, `--workers`) win over both.
    """
    path = config_path or os.environ.get("GATEWAY_CONFIG")
    file_values: dict[str, Any] = {}
    if path:
        file_values = _read_toml(Path(path))
    elif DEFAULT_CONFIG.is_file():
        file_values = _read_toml(DEFAULT_CONFIG)
    settings = Settings(**file_values)
    for name, value in overrides.items():
        if value is not None:
            # Init values rank below the environment; an explicit flag must not.
            Settings.__pydantic_validator__.validate_assignment(settings, name, value)
    return settings


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    # `[gateway]` holds the scalar settings; the other tables map to fields directly.
    flat: dict[str, Any] = dict(data.pop("gateway", {}))
    flat.update(data)
    return flat


def is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings) -> None:
    """Serving without gateway keys is only allowed where nobody else can connect."""
    if not settings.api_keys and not settings.admin_key and not is_loopback(settings.host):
        raise ConfigError(
            f"host: refusing to serve on {settings.host} without authentication; "
            "set GATEWAY_API_KEYS or GATEWAY_ADMIN_KEY, or bind to 127.0.0.1"
        )


def env_flag(environ: Mapping[str, str], name: str) -> bool:
    return bool(environ.get(name, "").strip())
