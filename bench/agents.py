"""Agent-turn benchmark: the gateway's own time per turn, and turns/s with 16 agents.

For each store (SQLite in a scratch directory; PostgreSQL when ``--postgres URL`` or
``GATEWAY_TEST_POSTGRES_URL`` names a server, in a fresh database dropped at the end),
it starts ``bench/upstream.py`` (zero delay) and one ``gateway serve`` worker pinned
to its own core, creates 16 agents, and measures through ``POST /v1/chat/completions``
with model ``agent/<name>`` (one step per turn: the fake answers without tool calls):

- overhead: turns one after another on one agent, each a conversation of at most
  ``--turns-per-conversation`` exchanges; per turn, the client's latency minus the
  upstream time the gateway reports in its ``Server-Timing: upstream;dur=…`` header.
  That is everything the gateway adds: HTTP, routing, the store (lock, input, history,
  step commit), prompt rendering, and the provider client.
- throughput: 16 clients in parallel, each looping turns on its own agent, for
  ``--duration`` seconds on one gateway worker.

Then the turn storm (``agent_storm.py``): 500 turns at once against a 10 s upstream on
two processes with a pool of 5 each, and the store's read latency meanwhile.

Run: ``.venv/bin/python bench/agents.py [--turns 400] [--duration 8] [--no-storm]``. The
tables go to stdout, the raw numbers to ``bench/results/agents.json`` (the storm's
under ``"storm"``), and one ``BENCH_JSON`` line carries them for ``run.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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

import agent_storm  # noqa: E402
import procs  # noqa: E402
from common import RESULT_PREFIX, median, percentile  # noqa: E402

AGENTS = 16
TARGETS_MS = {"sqlite": 5.0, "postgresql": 10.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=400, help="turns measured for overhead")
    parser.add_argument("--warmup", type=int, default=50, help="turns before measuring")
    parser.add_argument("--turns-per-conversation", type=int, default=10)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of the 16-agent run")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("GATEWAY_TEST_POSTGRES_URL"),
        help="PostgreSQL server URL (default: GATEWAY_TEST_POSTGRES_URL)",
    )
    parser.add_argument("--only", default="sqlite,postgresql")
    parser.add_argument("--gateway-cpu", type=int, default=0)
    parser.add_argument("--load-cpu", type=int, default=1)
    parser.add_argument(
        "--nice",
        type=int,
        default=-15,
        help="niceness of everything it runs, as in run.py (negative needs root)",
    )
    parser.add_argument("--output", type=Path, default=HERE / "results" / "agents.json")
    parser.add_argument("--no-storm", action="store_true", help="skip the 500-turn storm")
    return parser.parse_args(argv)


async def turn(
    session: aiohttp.ClientSession, url: str, agent: str, text: str, conversation: str
) -> tuple[float, float]:
    """One turn: (latency, upstream seconds the gateway reported)."""
    body = {"model": f"agent/{agent}", "messages": [{"role": "user", "content": text}]}
    headers = {"X-Conversation-Id": conversation}
    t0 = time.perf_counter()
    async with session.post(url, json=body, headers=headers) as resp:
        await resp.read()
        elapsed = time.perf_counter() - t0
        if resp.status != 200:
            raise RuntimeError(f"turn failed: HTTP {resp.status}: {await resp.text()}")
        timing = resp.headers.get("Server-Timing", "")
    upstream = float(timing.split("dur=")[1]) / 1000 if "dur=" in timing else 0.0
    return elapsed, upstream


async def measure(base: str, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    url = base + "/v1/chat/completions"
    connector = aiohttp.TCPConnector(limit=AGENTS * 2)
    async with aiohttp.ClientSession(connector=connector) as session:
        for i in range(AGENTS):
            async with session.post(
                base + "/v1/agents",
                json={
                    "name": f"bench-{i}",
                    "model": "openai/gpt-4o-mini",
                    "system": "Be brief.",
                },
            ) as resp:
                if resp.status != 201:
                    raise RuntimeError(f"create failed: {await resp.text()}")
        overheads: list[float] = []
        latencies: list[float] = []
        per = args.turns_per_conversation
        cpu0 = 0.0
        for n in range(args.warmup + args.turns):
            if n == args.warmup:
                cpu0 = procs.cpu_seconds(pid)
            convo = f"seq-{n // per}"
            latency, upstream = await turn(session, url, "bench-0", f"hello {n}", convo)
            if n >= args.warmup:
                latencies.append(latency)
                overheads.append(latency - upstream)
        cpu_per_turn = (procs.cpu_seconds(pid) - cpu0) / args.turns
        done = 0
        deadline = time.perf_counter() + args.duration

        async def worker(i: int) -> None:
            nonlocal done
            n = 0
            while time.perf_counter() < deadline:
                await turn(session, url, f"bench-{i}", f"hi {n}", f"par-{i}-{n // per}")
                n += 1
                done += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(AGENTS)))
        elapsed = time.perf_counter() - t0
    return {
        "overhead_p50_ms": 1000 * (median(overheads) or 0),
        "overhead_p99_ms": 1000 * (percentile(overheads, 99) or 0),
        "latency_p50_ms": 1000 * (median(latencies) or 0),
        "cpu_ms_per_turn": 1000 * cpu_per_turn,
        "turns": len(overheads),
        "parallel_turns_per_s": done / elapsed,
        "parallel_turns": done,
    }


def start(
    name: str,
    argv: list[str],
    env: dict[str, str],
    cpu: int,
    work: Path,
    port: int,
    health: str | None,
) -> procs.Proc:
    proc = procs.start(name, argv, work, cpu, env, work, port)
    why = procs.wait_ready(proc, 60, health, {})
    if why is not None:
        tail = proc.log_tail()
        procs.stop(proc)
        raise RuntimeError(f"{name} {why}:\n{tail}")
    return proc


def run_backend(
    name: str, db_url: str, upstream: str, args: argparse.Namespace, work: Path
) -> dict[str, Any]:
    drop = ("KIMI_", "OPENAI_", "ANTHROPIC_", "GATEWAY_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(
        {
            "OPENAI_API_KEY": "sk-bench",
            "OPENAI_BASE_URL": upstream,
            "GATEWAY_DATABASE_URL": db_url,
            "GATEWAY_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(REPO),
        }
    )
    port = procs.free_port()
    python = str(REPO / ".venv" / "bin" / "python")
    argv = [
        python if Path(python).exists() else sys.executable,
        "-m",
        "gateway",
        "serve",
        "--port",
        str(port),
    ]
    proc = start(f"gateway-{name}", argv, env, args.gateway_cpu, work, port, "/healthz")
    try:
        return asyncio.run(measure(f"http://127.0.0.1:{port}", proc.pid, args))
    finally:
        procs.stop(proc)


async def _pg(url: str, statement: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def report(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| store | gateway time per turn p50 | p99 | turn latency p50 | target p50 "
        f"| gateway CPU per turn | turns/s, {AGENTS} agents, 1 worker |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['overhead_p50_ms']:.2f} ms | {r['overhead_p99_ms']:.2f} ms "
            f"| {r['latency_p50_ms']:.2f} ms | ≤ {TARGETS_MS[name]:.0f} ms "
            f"| {r['cpu_ms_per_turn']:.2f} ms | {r['parallel_turns_per_s']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.nice < 0 and os.geteuid() != 0:
        args.nice = 0
    procs.NICE = args.nice
    if args.nice:
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)  # the load generator is this process
    only = set(args.only.split(","))
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="agw-bench-agents-") as tmp:
        work = Path(tmp)
        up_port = procs.free_port()
        upstream = start(
            "upstream",
            [sys.executable, str(HERE / "upstream.py"), "--port", str(up_port)],
            dict(os.environ),
            args.load_cpu,
            work,
            up_port,
            None,
        )
        base = f"http://127.0.0.1:{up_port}/v1"
        try:
            if "sqlite" in only:
                print("sqlite …", file=sys.stderr)
                results["sqlite"] = run_backend(
                    "sqlite", f"sqlite:///{work / 'agents.db'}", base, args, work
                )
            if "postgresql" in only and args.postgres:
                from sqlalchemy.engine import make_url

                db = f"agw_bench_{uuid.uuid4().hex[:8]}"
                asyncio.run(_pg(args.postgres, f'CREATE DATABASE "{db}"'))
                try:
                    print("postgresql …", file=sys.stderr)
                    url = make_url(args.postgres).set(database=db)
                    results["postgresql"] = run_backend(
                        "postgresql", url.render_as_string(hide_password=False), base, args, work
                    )
                finally:
                    asyncio.run(_pg(args.postgres, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        finally:
            procs.stop(upstream)
    print(report(results))
    output: dict[str, Any] = dict(results)
    if not args.no_storm:
        storm_args = agent_storm.parse_args(["--only", args.only])
        storm_args.postgres = args.postgres
        with tempfile.TemporaryDirectory(prefix="agw-bench-storm-") as tmp:
            output["storm"] = agent_storm.run(storm_args, Path(tmp))
        print()
        print(agent_storm.report(output["storm"], storm_args))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(output, indent=2) + "\n")
    print(RESULT_PREFIX + json.dumps(output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
