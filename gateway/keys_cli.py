"""`gateway keys create|list|show|revoke`: virtual keys for operators, from a terminal.

Like `gateway agents`, these work on the configured store directly (the same
`GATEWAY_DATABASE_URL` as `gateway serve`), with or without a gateway running; running
gateways see a change within seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.cli_store import run_command
from gateway.settings import Settings


def add_parser(sub: Any) -> None:
    keys = sub.add_parser("keys", help="manage virtual keys")
    verbs = keys.add_subparsers(dest="verb", required=True)
    verbs.add_parser("list", help="list keys").set_defaults(run=_run(_list))
    create = verbs.add_parser("create", help="create a key and print its secret once")
    create.add_argument("name")
    for flag, doc in (
        ("--models", "model handles, aliases or globs (kimi/*), comma-separated"),
        ("--agents", "agent names or globs, comma-separated"),
        ("--mcp-tools", "MCP tool names or globs, comma-separated"),
    ):
        create.add_argument(flag, help=doc)
    create.add_argument("--rpm", type=int, help="requests per minute")
    create.add_argument("--tpm", type=int, help="tokens per minute")
    create.add_argument("--max-budget-usd", type=float, help="budget in USD per period")
    create.add_argument("--budget-period", choices=["daily", "monthly"])
    create.add_argument("--expires-at", help="unix seconds or an ISO 8601 time")
    create.set_defaults(run=_run(_create))
    for verb, doc, fn in (
        ("show", "print a key as JSON (never its secret)", _show),
        ("revoke", "revoke a key (it stops everywhere within seconds)", _revoke),
    ):
        parser = verbs.add_parser(verb, help=doc)
        parser.add_argument("key", help="key name or id")
        parser.set_defaults(run=_run(fn))


Command = Callable[[Any, argparse.Namespace], Awaitable[int]]


def _run(command: Command) -> Callable[[argparse.Namespace, Settings], int]:
    def run(args: argparse.Namespace, settings: Settings) -> int:
        from gateway.agents.store import AgentStore
        from gateway.tenants.keys import KeyStore

        async def main() -> int:
            store = AgentStore(settings.resolved_database_url)
            return await run_command(
                store.open, lambda: command(KeyStore(store), args), store.close
            )

        return asyncio.run(main())

    return run


async def _list(keys: Any, args: argparse.Namespace) -> int:
    rows = []
    for k in await keys.list():
        state = "revoked" if k.revoked_at is not None else "active"
        limits = " ".join(
            f"{name}={value}"
            for name, value in (
                ("rpm", k.rpm),
                ("tpm", k.tpm),
                ("budget", k.max_budget_usd),
                ("period", k.budget_period),
            )
            if value is not None
        )
        rows.append((k.name, k.id, k.prefix + "…", state, limits))
    header = ("NAME", "ID", "PREFIX", "STATE", "LIMITS")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[4]]).rstrip())
    return 0


def _split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


async def _create(keys: Any, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"name": args.name}
    for field in ("models", "agents", "mcp_tools"):
        value = _split(getattr(args, field))
        if value is not None:
            body[field] = value
    for field in ("rpm", "tpm", "max_budget_usd", "budget_period"):
        if getattr(args, field) is not None:
            body[field] = getattr(args, field)
    if args.expires_at is not None:
        raw = args.expires_at
        body["expires_at"] = float(raw) if raw.replace(".", "", 1).isdigit() else raw
    record, secret = await keys.create(body)
    print(f"created key {record.name} ({record.id})", file=sys.stderr)
    print("the secret is shown once; store it now:", file=sys.stderr)
    print(secret)
    return 0


async def _show(keys: Any, args: argparse.Namespace) -> int:
    record = await keys.get(args.key)
    print(json.dumps(record.to_api(), indent=2))
    return 0


async def _revoke(keys: Any, args: argparse.Namespace) -> int:
    record = await keys.revoke(args.key)
    print(f"revoked key {record.name} ({record.id})")
    return 0
