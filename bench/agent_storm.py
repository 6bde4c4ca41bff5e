"""The turn storm: many agent turns waiting on a slow model must not starve the store.

Two ``gateway serve`` processes share one store, each with a pool of
``--pool`` connections (``GATEWAY_DATABASE_POOL_SIZE``), in front of an upstream
that answers after ``--delay`` seconds. ``--turns`` turns start at once, each in a
conversation of its own (over 16 agents), alternating between the processes, while a
reader sends ``GET /v1/agents`` every 50 ms to one process or the other. Reported:
how many turns succeeded, the failures by status and code, the store read's latency
(p50, p99, max) during the storm, and, on PostgreSQL, the most server connections
the gateways held at once.

Run alone: ``.venv/bin/python bench/agent_storm.py --postgres URL`` (or SQLite
without it); ``bench/agents.py`` runs it after its own measurements.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import procs  # noqa: E402
from common import median, percentile  # noqa: E402

AGENTS = 16
READ_EVERY = 0.05


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=500)
    parser.add_argument("--delay", type=float, default=10.0, help="upstream seconds per call")
    parser.add_argument("--pool", type=int, default=5, help="GATEWAY_DATABASE_POOL_SIZE")
    parser.add_argument("--postgres", default=os.environ.get("GATEWAY_TEST_POSTGRES_URL"))
    parser.add_argument("--only", default="sqlite,postgresql")
    return parser.parse_args(argv)


async def _storm(bases: list[str], args: argparse.Namespace, db: str | None) -> dict[str, Any]:
    # One connection per turn: the client must never be what queues them.
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=args.delay * 3 + 120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for i in range(AGENTS):
            body = {"name": f"storm-{i}", "model": "openai/gpt-4o-mini", "system": "Be brief."}
            async with session.post(bases[0] + "/v1/agents", json=body) as resp:
                if resp.status != 201:
                    raise RuntimeError(f"create failed: {await resp.text()}")
        outcomes: collections.Counter[str] = collections.Counter()
        reads: list[float] = []
        read_errors: collections.Counter[str] = collections.Counter()
        peak = 0
        done = asyncio.Event()

        async def turn(n: int) -> None:
            body = {
                "model": f"agent/storm-{n % AGENTS}",
                "messages": [{"role": "user", "content": f"question {n}"}],
            }
            headers = {"X-Conversation-Id": f"c-{n}"}
            url = bases[n % len(bases)] + "/v1/chat/completions"
            try:
                async with session.post(url, json=body, headers=headers) as resp:
                    raw = await resp.json(content_type=None)
                    if resp.status == 200:
                        outcomes["200"] += 1
                    else:
                        code = (raw.get("error") or {}).get("code") if isinstance(raw, dict) else ""
                        outcomes[f"{resp.status} {code}"] += 1
            except (TimeoutError, aiohttp.ClientError) as exc:
                outcomes[type(exc).__name__] += 1

        async def reader() -> None:
            async with aiohttp.ClientSession() as own:
                n = 0
                while not done.is_set():
                    t0 = time.perf_counter()
                    try:
                        async with own.get(bases[n % len(bases)] + "/v1/agents") as resp:
                            await resp.read()
                            if resp.status != 200:
                                read_errors[str(resp.status)] += 1
                    except aiohttp.ClientError as exc:
                        read_errors[type(exc).__name__] += 1
                    reads.append(time.perf_counter() - t0)
                    n += 1
                    await asyncio.sleep(READ_EVERY)

        async def watch_connections() -> None:
            nonlocal peak
            if db is None:
                return
            import asyncpg

            conn = await asyncpg.connect(db)
            try:
                name = db.rsplit("/", 1)[1].split("?")[0]
                while not done.is_set():
                    count = await conn.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 "
                        "AND pid <> pg_backend_pid()",
                        name,
                    )
                    peak = max(peak, int(count))
                    await asyncio.sleep(0.2)
            finally:
                await conn.close()

        side = [asyncio.create_task(reader()), asyncio.create_task(watch_connections())]
        t0 = time.perf_counter()
        await asyncio.gather(*(turn(n) for n in range(args.turns)))
        elapsed = time.perf_counter() - t0
        done.set()
        await asyncio.gather(*side)
    return {
        "turns": args.turns,
        "ok": outcomes["200"],
        "failures": {k: v for k, v in outcomes.items() if k != "200"},
        "seconds": elapsed,
        "read_p50_ms": 1000 * (median(reads) or 0),
        "read_p99_ms": 1000 * (percentile(reads, 99) or 0),
        "read_max_ms": 1000 * max(reads, default=0),
        "reads": len(reads),
        "read_errors": dict(read_errors),
        "peak_server_connections": peak if db else None,
    }


def _gateway(name: str, db_url: str, upstream: str, pool: int, work: Path) -> procs.Proc:
    drop = ("KIMI_", "OPENAI_", "ANTHROPIC_", "GATEWAY_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(
        {
            "OPENAI_API_KEY": "sk-bench",
            "OPENAI_BASE_URL": upstream,
            "GATEWAY_DATABASE_URL": db_url,
            "GATEWAY_DATABASE_POOL_SIZE": str(pool),
            "GATEWAY_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(REPO),
        }
    )
    port = procs.free_port()
    python = str(REPO / ".venv" / "bin" / "python")
    exe = python if Path(python).exists() else sys.executable
    argv = [exe, "-m", "gateway", "serve", "--port", str(port)]
    proc = procs.start(name, argv, work, None, env, work, port)
    why = procs.wait_ready(proc, 60, "/healthz", {})
    if why is not None:
        tail = proc.log_tail()
        procs.stop(proc)
        raise RuntimeError(f"{name} {why}:\n{tail}")
    return proc


def run_store(
    name: str, db_url: str, upstream: str, args: argparse.Namespace, work: Path
) -> dict[str, Any]:
    gateways: list[procs.Proc] = []
    try:
        # One after the other: the first creates the schema.
        for i in range(2):
            gateways.append(_gateway(f"storm-{name}-{i}", db_url, upstream, args.pool, work))
        bases = [f"http://127.0.0.1:{g.port}" for g in gateways]
        watch = _asyncpg_dsn(db_url) if name == "postgresql" else None
        return asyncio.run(_storm(bases, args, watch))
    finally:
        for proc in gateways:
            procs.stop(proc, grace=15)


def _asyncpg_dsn(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _pg(url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def run(args: argparse.Namespace, work: Path) -> dict[str, dict[str, Any]]:
    """The storm on each store `args.only` names; results by store."""
    only = set(args.only.split(","))
    results: dict[str, dict[str, Any]] = {}
    port = procs.free_port()
    argv = [sys.executable, str(HERE / "upstream.py"), "--port", str(port)]
    upstream = procs.start(
        "storm-upstream",
        [*argv, "--delay", str(args.delay)],
        work,
        None,
        dict(os.environ),
        work,
        port,
    )
    if procs.wait_ready(upstream, 30, None, {}) is not None:
        procs.stop(upstream)
        raise RuntimeError(f"upstream did not start:\n{upstream.log_tail()}")
    base = f"http://127.0.0.1:{port}/v1"
    try:
        if "sqlite" in only:
            print("storm, sqlite …", file=sys.stderr)
            results["sqlite"] = run_store(
                "sqlite", f"sqlite:///{work / 'storm.db'}", base, args, work
            )
        if "postgresql" in only and args.postgres:
            from sqlalchemy.engine import make_url

            db = f"agw_storm_{uuid.uuid4().hex[:8]}"
            asyncio.run(_pg(args.postgres, f'CREATE DATABASE "{db}"'))
            try:
                print("storm, postgresql …", file=sys.stderr)
                url = make_url(args.postgres).set(database=db).render_as_string(hide_password=False)
                results["postgresql"] = run_store("postgresql", url, base, args, work)
            finally:
                asyncio.run(_pg(args.postgres, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
    finally:
        procs.stop(upstream)
    return results


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"| store | turns ok of {args.turns} ({args.delay:g} s upstream, 2 processes, pool "
        f"{args.pool}) | failures | GET /v1/agents p50 | p99 | max | peak connections |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        failures = ", ".join(f"{k}: {v}" for k, v in r["failures"].items()) or "none"
        if r["read_errors"]:
            failures += "; reads: " + ", ".join(f"{k}: {v}" for k, v in r["read_errors"].items())
        peak = r["peak_server_connections"]
        lines.append(
            f"| {name} | {r['ok']} in {r['seconds']:.1f} s | {failures} "
            f"| {r['read_p50_ms']:.1f} ms | {r['read_p99_ms']:.1f} ms | {r['read_max_ms']:.0f} ms "
            f"| {peak if peak is not None else 'n/a'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="agw-bench-storm-") as tmp:
        results = run(args, Path(tmp))
    print(report(results, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
