"""Open-loop load generator: fires requests on a fixed schedule (``--rate`` per
second for ``--duration`` seconds) whether or not earlier ones completed, so a slow
server cannot slow the offered load down (no coordinated omission).  Records each
request's latency (send to last byte) and, for streams, its time to first token
(send to the first SSE event carrying non-empty ``delta.content``).

Prints one ``BENCH_JSON {...}`` line (see ``common.OpenLoopResult``).

Run: ``python bench/openloop.py --url http://127.0.0.1:8001/v1/chat/completions
--model gpt-4o-mini [--stream] --rate 100 --duration 10``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass

import aiohttp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import OpenLoopResult, emit, percentile, request_body


@dataclass
class Sample:
    ok: bool
    latency: float = 0.0
    ttft: float | None = None
    error: str | None = None


def first_content_seen(buffer: bytes) -> bool:
    """True once a complete SSE event in ``buffer`` carries a non-empty content delta."""
    for event in buffer.split(b"\n\n")[:-1]:  # the last piece may be incomplete
        for line in event.split(b"\n"):
            if not line.startswith(b"data:") or line.strip() == b"data: [DONE]":
                continue
            try:
                chunk = json.loads(line[5:])
                for choice in chunk.get("choices") or []:
                    if (choice.get("delta") or {}).get("content"):
                        return True
                # Anthropic's Messages events.
                if chunk.get("type") == "content_block_delta":
                    if (chunk.get("delta") or {}).get("text"):
                        return True
                # The Responses API's typed events.
                if chunk.get("type") == "response.output_text.delta" and chunk.get("delta"):
                    return True
            except (ValueError, AttributeError, TypeError):
                continue
    return False


async def read_stream(resp: aiohttp.ClientResponse, t0: float) -> tuple[float | None, bool]:
    """Read an SSE body to the end; return (TTFT, whether it ended as a stream should:
    `[DONE]`, Anthropic's `message_stop` or the Responses API's `response.completed`)."""
    ttft: float | None = None
    buffer = b""
    tail = b""
    done = False
    async for piece in resp.content.iter_any():
        if ttft is None:
            buffer += piece
            if first_content_seen(buffer):
                ttft = time.perf_counter() - t0
                buffer = b""
        window = tail + piece
        done = (
            done
            or b"data: [DONE]" in window
            or b"event: message_stop" in window
            or b"event: response.completed" in window
        )
        tail = window[-64:]
    return ttft, done


async def one_request(
    session: aiohttp.ClientSession, url: str, body: bytes, stream: bool
) -> Sample:
    t0 = time.perf_counter()
    try:
        async with session.post(url, data=body) as resp:
            if stream:
                ttft, done = await read_stream(resp, t0)
            else:
                await resp.read()
                ttft, done = None, True
            latency = time.perf_counter() - t0
            if resp.status != 200 or not done:
                return Sample(False, latency, error=f"status {resp.status}, end seen: {done}")
            if stream and ttft is None:
                return Sample(False, latency, error="stream had no content delta")
            return Sample(True, latency, ttft)
    except (TimeoutError, aiohttp.ClientError) as exc:
        return Sample(False, time.perf_counter() - t0, error=f"{type(exc).__name__}: {exc}")


async def fire(
    session: aiohttp.ClientSession, args: argparse.Namespace, body: bytes, seconds: float
) -> tuple[list[Sample], float]:
    """Fire ``rate * seconds`` requests on schedule; return samples and worst lag."""
    loop = asyncio.get_running_loop()
    count = max(1, round(args.rate * seconds))
    # perf_counter, not loop.time(): uvloop's clock has 1 ms resolution.
    start = time.perf_counter() + 0.01
    tasks: list[asyncio.Task[Sample]] = []
    max_lag = 0.0
    for i in range(count):
        due = start + i / args.rate
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        max_lag = max(max_lag, time.perf_counter() - due)
        tasks.append(loop.create_task(one_request(session, args.url, body, args.stream)))
    samples = await asyncio.wait_for(asyncio.gather(*tasks), timeout=args.timeout)
    return list(samples), max_lag


def summarize(samples: list[Sample], max_lag: float) -> OpenLoopResult:
    good = [s for s in samples if s.ok]
    bad = [s for s in samples if not s.ok]
    lat = [s.latency * 1000 for s in good]
    ttft = [s.ttft * 1000 for s in good if s.ttft is not None]
    return OpenLoopResult(
        sent=len(samples),
        ok=len(good),
        errors=len(bad),
        error_sample=bad[0].error if bad else None,
        latency_p50_ms=percentile(lat, 50),
        latency_p99_ms=percentile(lat, 99),
        latency_max_ms=max(lat) if lat else None,
        ttft_p50_ms=percentile(ttft, 50),
        ttft_p99_ms=percentile(ttft, 99),
        max_lag_ms=max_lag * 1000,
    )


async def run(args: argparse.Namespace) -> OpenLoopResult:
    body = request_body(args.url, args.model, args.stream)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {args.api_key}"}
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
    async with aiohttp.ClientSession(
        headers=headers, timeout=timeout, connector=connector
    ) as session:
        if args.warmup > 0:  # opens the connections, fills the server's caches
            await fire(session, args, body, args.warmup)
        samples, max_lag = await fire(session, args, body, args.duration)
    return summarize(samples, max_lag)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True, help="full URL of the chat completions route")
    parser.add_argument("--model", default="gpt-4o-mini")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of measured load")
    parser.add_argument(
        "--warmup", type=float, default=0.5, help="seconds of unmeasured load first"
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="per-request and overall bound, seconds"
    )
    parser.add_argument("--api-key", default="sk-bench")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    try:
        import uvloop  # less scheduling jitter than the default loop

        result = uvloop.run(run(args))
    except ImportError:
        result = asyncio.run(run(args))
    emit(result)


if __name__ == "__main__":
    main()
