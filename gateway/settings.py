"""One typed settings object, read from the environment and the TOML config file.

Environment variables win over the file. Provider keys are read from the variables
the contract names (`KIMI_API_KEY`, …) or from the variable a configured provider
names in `api_key_env`; they are kept as `SecretStr` so they never print.
"""

from __future__ import annotations

import ipaddress
import os
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
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
    """An upstream MCP server: `url` (Streamable HTTP) or `command` (stdio).

    Agents that name it in `mcp_servers` may use its tools; with `expose`, its tools,
    resources and prompts are also served at `/mcp` as `<name>__<tool>`.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    timeout: float = Field(default=60.0, gt=0)
    expose: bool = False

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
    # "auto": text when stderr is a terminal, JSON otherwise (log collectors).
    log_format: Literal["json", "text", "auto"] = "auto"
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
    # Debugging only: put the arguments of proxied MCP tool calls in their log lines.
    mcp_log_arguments: bool = False

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

    # The TOML file these settings were read from, if any (for error messages).
    _config_file: Path | None = PrivateAttr(default=None)

    @property
    def config_file(self) -> Path | None:
        return self._config_file

    def source_of(self, field: str) -> str:
        """Where a setting's value came from, as a user would look for it."""
        return source_of(field, self._config_file)

    @property
    def resolved_log_format(self) -> Literal["json", "text"]:
        if self.log_format == "auto":
            return "text" if sys.stderr.isatty() else "json"
        return self.log_format

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
    source: Path | None = None
    if path:
        source = Path(path)
    elif DEFAULT_CONFIG.is_file():
        source = DEFAULT_CONFIG
    if source is not None:
        try:
            file_values = _read_toml(source)
        except ConfigError as exc:
            named_by = "--config" if config_path else "GATEWAY_CONFIG" if path else None
            raise ConfigError(f"{named_by}: {exc}" if named_by else str(exc)) from None
    try:
        settings = Settings(**file_values)
    except ValidationError as exc:
        raise ConfigError(describe(exc, source, file_values)) from None
    except SettingsError as exc:
        # A variable that must hold JSON (e.g. GATEWAY_ALIASES) does not.
        raise ConfigError(str(exc)) from None
    settings._config_file = source
    for name, value in overrides.items():
        if value is not None:
            # Init values rank below the environment; an explicit flag must not.
            try:
                Settings.__pydantic_validator__.validate_assignment(settings, name, value)
            except ValidationError as exc:
                raise ConfigError(f"--{name} {value}: {_first_message(exc)}") from None
    return settings


def source_of(field: str, config_file: Path | None) -> str:
    """`GATEWAY_PORT` when the environment sets it, else the file's table and key."""
    var = f"GATEWAY_{field.upper()}"
    if var in os.environ:
        return var
    if config_file is not None:
        return f"{field} in [gateway] of {config_file}"
    return var


def describe(exc: ValidationError, config_file: Path | None, file_values: Mapping[str, Any]) -> str:
    """Each problem with the place its value came from: a variable, or a file's table."""
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        msg = err["msg"]
        if not loc:
            parts.append(msg)
            continue
        field, rest = loc[0], loc[1:]
        if field in ("providers", "mcp_servers") and rest and rest[0].isdigit():
            entry = file_values.get(field, [])
            index = int(rest[0])
            name = (
                entry[index].get("name")
                if index < len(entry) and isinstance(entry[index], dict)
                else None
            )
            label = f"'{name}'" if name else f"#{index + 1}"
            key = ".".join(rest[1:]) or "(entry)"
            parts.append(f"{key} of [[{field}]] {label} in {config_file}: {msg}")
        elif field == "aliases":
            parts.append(f"[aliases] {'.'.join(rest)} in {config_file}: {msg}")
        else:
            value = os.environ.get(f"GATEWAY_{field.upper()}")
            where = source_of(field, config_file)
            shown = f"={value!r}" if value is not None and "key" not in field else ""
            parts.append(f"{where}{shown}: {msg}")
    return "; ".join(parts)


def _first_message(exc: ValidationError) -> str:
    errors = exc.errors()
    return str(errors[0]["msg"]) if errors else str(exc)


def check_base_url(url: str, where: str) -> None:
    """A provider's base URL must be absolute http(s), or every request would fail later."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{where}: '{url}' is not an http(s) URL; write it in full, "
            "e.g. https://api.moonshot.ai/v1 or http://127.0.0.1:8000/v1"
        )


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
