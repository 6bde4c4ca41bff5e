"""MCP gateway benchmark: what a proxied `tools/call` adds over calling the upstream directly.

It starts a local upstream MCP server (`tests/mcp_test_server.py --http`, Streamable HTTP)
pinned to one core and one `gateway serve` worker, pinned to another, that exposes it
(`expose = true`). The official `mcp` SDK client (this process) then calls the upstream's
`echo` tool one call after another, alternating blocks of direct calls and calls through
the gateway (`bench__echo`), so both see the same machine state. Reported: p50/p90/p99 of
each path and the added p50 (target ≤ 2 ms), plus the gateway's CPU per proxied call.

Run: ``.venv/bin/python bench/mcp_gateway.py [--calls 1000]``. The table goes to stdout, the raw
numbers to ``bench/results/mcp_gateway.json``, and one ``BENCH_JSON`` line carries them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import httpx2  # noqa: E402
import procs  # noqa: E402
from common import RESULT_PREFIX, percentile  # noqa: E402
from mcp import Client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

TARGET_ADDED_P50_MS = 2.0
KEY = "sk-bench-client-key"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=1000, help="measured calls per path")
    parser.add_argument("--warmup", type=int, default=100, help="calls per path before measuring")
    parser.add_argument("--block", type=int, default=50, help="calls per alternating block")
    parser.add_argument("--gateway-cpu", type=int, default=0)
    parser.add_argument("--upstream-cpu", type=int, default=1)
    parser.add_argument("--nice", type=int, default=-15, help="as in run.py (negative needs root)")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "mcp_gateway.json")
    return parser.parse_args(argv)


def start(name: str, argv: list[str], env: dict[str, str], cpu: int, work: Path, port: int,
          health: str | None) -> procs.Proc:  # fmt: skip
    proc = procs.start(name, argv, work, cpu, env, work, port)
    why = procs.wait_ready(proc, 60, health, {})
    if why is not None:
        tail = proc.log_tail()
        procs.stop(proc)
        raise RuntimeError(f"{name} {why}:\n{tail}")
    return proc


async def timed_calls(client: Client, tool: str, n: int) -> list[float]:
    out: list[float] = []
    for i in range(n):
        t0 = time.perf_counter()
        result = await client.call_tool(tool, {"text": f"ping {i}"})
        out.append(time.perf_counter() - t0)
        if result.is_error:
            raise RuntimeError(f"{tool} failed: {result.content}")
    return out


async def measure(upstream_url: str, gateway_url: str, pid: int, args: argparse.Namespace
                  ) -> dict[str, Any]:  # fmt: skip
    headers = {"Authorization": f"Bearer {KEY}"}
    async with (
        httpx2.AsyncClient() as direct_http,
        httpx2.AsyncClient(headers=headers) as gateway_http,
        Client(streamable_http_client(upstream_url, http_client=direct_http)) as direct,
        Client(streamable_http_client(gateway_url, http_client=gateway_http)) as gateway,
    ):
        deadline = time.monotonic() + 30
        while "bench__echo" not in {t.name for t in (await gateway.list_tools()).tools}:
            if time.monotonic() > deadline:
                raise RuntimeError("the gateway never listed bench__echo")
            await asyncio.sleep(0.1)
        await direct.list_tools()
        await timed_calls(direct, "echo", args.warmup)
        await timed_calls(gateway, "bench__echo", args.warmup)
        direct_s: list[float] = []
        proxied_s: list[float] = []
        cpu = 0.0
        while len(direct_s) < args.calls:
            direct_s += await timed_calls(direct, "echo", args.block)
            cpu0 = procs.cpu_seconds(pid)
            proxied_s += await timed_calls(gateway, "bench__echo", args.block)
            cpu += procs.cpu_seconds(pid) - cpu0

    def ms(values: list[float], q: float) -> float:
        return (percentile(values, q) or 0.0) * 1000

    return {
        "calls": len(proxied_s),
        "direct_p50_ms": ms(direct_s, 50),
        "direct_p90_ms": ms(direct_s, 90),
        "direct_p99_ms": ms(direct_s, 99),
        "gateway_p50_ms": ms(proxied_s, 50),
        "gateway_p90_ms": ms(proxied_s, 90),
        "gateway_p99_ms": ms(proxied_s, 99),
        "added_p50_ms": ms(proxied_s, 50) - ms(direct_s, 50),
        "gateway_cpu_ms_per_call": cpu / len(proxied_s) * 1000,
        "target_added_p50_ms": TARGET_ADDED_P50_MS,
    }


def report(r: dict[str, Any]) -> str:
    return "\n".join(
        [
            "| MCP tools/call (Streamable HTTP) | p50 | p90 | p99 |",
            "|---|---|---|---|",
            f"| upstream directly | {r['direct_p50_ms']:.2f} ms | {r['direct_p90_ms']:.2f} ms "
            f"| {r['direct_p99_ms']:.2f} ms |",
            f"| through the gateway | {r['gateway_p50_ms']:.2f} ms | {r['gateway_p90_ms']:.2f} ms "
            f"| {r['gateway_p99_ms']:.2f} ms |",
            "",
            f"Added p50: {r['added_p50_ms']:.2f} ms (target ≤ {TARGET_ADDED_P50_MS:.0f} ms); "
            f"gateway CPU per proxied call: {r['gateway_cpu_ms_per_call']:.2f} ms "
            f"({r['calls']} calls per path).",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.nice < 0 and os.geteuid() != 0:
        args.nice = 0
    procs.NICE = args.nice
    if args.nice:
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)
    python = str(REPO / ".venv" / "bin" / "python")
    python = python if Path(python).exists() else sys.executable
    with tempfile.TemporaryDirectory(prefix="agw-bench-mcp-") as tmp:
        work = Path(tmp)
        up_port = procs.free_port()
        upstream_url = f"http://127.0.0.1:{up_port}/mcp"
        upstream = start(
            "mcp-upstream",
            [python, str(REPO / "tests" / "mcp_test_server.py"), "--http", str(up_port)],
            dict(os.environ),
            args.upstream_cpu,
            work,
            up_port,
            None,
        )
        config = work / "gateway.toml"
        config.write_text(
            f'[[mcp_servers]]\nname = "bench"\nurl = "{upstream_url}"\nexpose = true\n'
        )
        drop = ("KIMI_", "OPENAI_", "ANTHROPIC_", "GATEWAY_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
        env.update(
            {
                "OPENAI_API_KEY": "sk-bench",
                "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
                "GATEWAY_API_KEYS": KEY,
                "GATEWAY_DATA_DIR": str(work / "data"),
                # INFO, as deployed: each proxied call writes its log line.
                "GATEWAY_LOG_LEVEL": "INFO",
                "PYTHONPATH": str(REPO),
            }
        )
        gw_port = procs.free_port()
        argv = [python, "-m", "gateway", "--config", str(config), "serve", "--port", str(gw_port)]
        try:
            gateway = start("gateway", argv, env, args.gateway_cpu, work, gw_port, "/healthz")
            try:
                print("mcp tools/call …", file=sys.stderr)
                results = asyncio.run(
                    measure(upstream_url, f"http://127.0.0.1:{gw_port}/mcp", gateway.pid, args)
                )
            finally:
                procs.stop(gateway)
        finally:
            procs.stop(upstream)
    print(report(results))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(RESULT_PREFIX + json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
