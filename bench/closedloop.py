"""Closed-loop load generator in Python: the fallback when ``wrk`` cannot be
installed.  ``--connections`` workers each send a request, read the whole reply,
and send the next, for ``--duration`` seconds.

It is much slower than wrk (one Python event loop does roughly 5-10k small
requests/s), so with it the fastest rows may measure the generator rather than
the proxy: prefer wrk.  Prints one ``BENCH_JSON {...}`` line shaped like
``common.ClosedLoopResult``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

import aiohttp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ClosedLoopResult, emit, percentile, request_body


async def worker(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    deadline: float,
    latencies: list[float],
    errors: dict[str, int],
) -> None:
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        try:
            async with session.post(url, data=body) as resp:
                await resp.read()  # also drains a stream to its end
                if resp.status >= 400:
                    errors["status"] = errors.get("status", 0) + 1
        except TimeoutError:
            errors["timeout"] = errors.get("timeout", 0) + 1
            continue
        except aiohttp.ClientError:
            errors["read"] = errors.get("read", 0) + 1
            continue
        latencies.append(time.perf_counter() - t0)


async def run(args: argparse.Namespace) -> ClosedLoopResult:
    body = request_body(args.url, args.model, args.stream)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {args.api_key}"}
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=10)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    async with aiohttp.ClientSession(
        headers=headers, connector=connector, timeout=timeout
    ) as session:
        start = time.perf_counter()
        deadline = start + args.duration
        workers = [
            worker(session, args.url, body, deadline, latencies, errors)
            for _ in range(args.connections)
        ]
        await asyncio.gather(*workers)
        elapsed = time.perf_counter() - start
    ms = [x * 1000 for x in latencies]
    # Replies with an error status are in ``latencies`` too: they completed.
    return ClosedLoopResult(len(latencies), errors, elapsed, percentile(ms, 50), percentile(ms, 99))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--model", default="gpt-4o-mini")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--api-key", default="sk-bench")
    args = parser.parse_args()
    try:
        import uvloop

        result = uvloop.run(run(args))
    except ImportError:
        result = asyncio.run(run(args))
    emit(result)


if __name__ == "__main__":
    main()
