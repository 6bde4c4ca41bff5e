"""The `gateway` command: serve, models, check, mcp, and the `agents` and `keys` groups."""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from gateway import agents_cli, errors, keys_cli
from gateway.settings import ConfigError, Settings, check_bind, load_settings

EXIT_CONFIG = 2
SHUTDOWN_BACKSTOP_SECONDS = 3.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = _settings(args)
        return int(args.run(args, settings) or 0)
    except ConfigError as exc:
        print(f"gateway: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway", description="OpenAI-compatible and MCP gateway"
    )
    parser.add_argument("--config", help="TOML config file (default: config/gateway.toml)")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
    serve.set_defaults(run=_serve)
    models = sub.add_parser("models", help="print the resolved model table")
    models.set_defaults(run=_models)
    check = sub.add_parser("check", help="validate each enabled provider's key")
    check.set_defaults(run=_check)
    agents_cli.add_parser(sub)
    keys_cli.add_parser(sub)
    mcp = sub.add_parser("mcp", help="serve MCP over stdio (for desktop clients)")
    mcp.set_defaults(run=_mcp)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    config = getattr(args, "sub_config", None) or args.config
    overrides = {k: getattr(args, k, None) for k in ("host", "port", "workers")}
    try:
        return load_settings(config, **overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{field}: {err['msg']}")
    return "; ".join(parts)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from gateway.observability import multiprocess
    from gateway.observability.logging import level_name, logging_config

    check_bind(settings)
    # Fail here, in one line and with exit code 2, on what every worker would fail on
    # at start-up with a traceback: provider settings, aliases, the agent store.
    asyncio.run(_preflight(settings))
    if settings.workers > 1 and not settings.redis_url:
        print(
            f"gateway: warning: limits (GATEWAY_RATE_LIMIT_RPM and virtual keys' rpm, tpm "
            f"and budgets) are kept per worker, so {settings.workers} workers allow up to "
            f"{settings.workers}x each limit; set GATEWAY_REDIS_URL to share them",
            file=sys.stderr,
        )
    config = getattr(args, "sub_config", None) or args.config
    if config:
        # Workers re-read settings in their own process; they find the file this way.
        os.environ["GATEWAY_CONFIG"] = os.path.abspath(config)
    os.environ["GATEWAY_HOST"] = settings.host
    # Workers must know they share the socket: MCP sessions cannot span them.
    os.environ["GATEWAY_WORKERS"] = str(settings.workers)
    # Before any worker imports prometheus_client, which picks its storage at import time.
    multiprocess.prepare(settings, os.environ)
    uvicorn.run(
        "gateway.asgi:create_from_environment",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        # httptools, plus a read timeout for slow or stalled request heads and bodies.
        http="gateway.http.protocol:TimedHttpToolsProtocol",
        access_log=False,  # the gateway writes its own line per request
        log_config=logging_config(settings),
        log_level=level_name(settings.log_level),
        lifespan="on",
        # The gateway ends its own streams and turns at the grace's end (see
        # gateway.lifecycle); uvicorn's timeout is only the backstop for what did not.
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace + SHUTDOWN_BACKSTOP_SECONDS),
    )
    return 0


async def _preflight(settings: Settings) -> None:
    from gateway.agents.store import AgentStore, StoreUnavailable
    from gateway.providers.registry import check_aliases, provider_specs

    check_aliases(settings.aliases, provider_specs(settings), settings.config_file)
    where = settings.source_of("database_url")
    if not settings.database_url:
        where = f"the default store under {settings.source_of('data_dir')}"
    try:
        store = AgentStore(settings.resolved_database_url)
    except ConfigError as exc:
        # "database_url: not a database URL …", said of where the URL came from.
        raise ConfigError(f"{where}: {str(exc).removeprefix('database_url: ')}") from None
    try:
        # A connection is enough to catch a wrong URL or login; the workers migrate.
        await store.check()
    except StoreUnavailable as exc:
        raise ConfigError(f"{where}: {exc}") from None
    finally:
        await store.close()


def _mcp(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.mcp.stdio import serve_stdio

    return serve_stdio(settings)


def _models(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.services import Services

    async def run() -> None:
        services = Services(settings)
        await services.start(agents=False)
        try:
            rows = [
                (m.handle, m.provider, str(m.context_window or "-"), m.source)
                for m in await services.router.list_models()
            ]
            resting = await services.groups.resting()
        finally:
            await services.close()
        rows.sort()
        header = ("HANDLE", "PROVIDER", "CONTEXT", "SOURCE")
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
        for row in [header, *rows]:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        for name, group in services.groups.groups.items():
            targets = ", ".join(
                f"{t} (cooling down)" if t in resting.get(name, ()) else t for t in group.targets
            )
            print(f"group {name} ({group.strategy}): {targets}")
        for spec in services.specs.values():
            if not spec.enabled:
                print(f"# {spec.disabled_reason}", file=sys.stderr)

    asyncio.run(run())
    return 0


def _check(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.services import Services

    async def run() -> int:
        services = Services(settings)
        await services.start(agents=False)
        failed = 0
        try:
            if not services.clients:
                variables = ", ".join(
                    dict.fromkeys(s.key_env for s in services.specs.values() if s.key_env)
                )
                print(
                    f"no provider is enabled: set one of {variables} "
                    "(or add a provider to the config file)",
                    file=sys.stderr,
                )
                return 1
            for name, client in services.clients.items():
                spec = services.specs[name]
                url = spec.base_url.rstrip("/") + "/models"
                try:
                    ids = await client.transport.fetch_model_ids()
                except errors.GatewayError as exc:
                    failed += 1
                    hint = _check_hint(exc, spec.key_env, spec.profile.base_url_env)
                    print(f"{name}: FAILED: GET {url}: {exc.message}; {hint}")
                else:
                    print(f"{name}: ok ({len(ids)} models from {url})")
        finally:
            await services.close()
        return 1 if failed else 0

    return asyncio.run(run())


def _check_hint(exc: errors.GatewayError, key_env: str, base_url_env: str | None) -> str:
    """Which variable to fix for this failure."""
    if isinstance(exc, errors.UpstreamAuthFailed):
        return f"check {key_env}"
    where = base_url_env or "the provider's base_url"
    return f"check {where} and that the provider is reachable"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
