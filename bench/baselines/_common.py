"""What both baseline pass-through proxies share: the pooled aiohttp session and
the uvicorn settings the benchmark uses for every ASGI app (uvloop, httptools,
no access log, one worker in-process)."""

from __future__ import annotations

import argparse
import os
from typing import Any

import aiohttp


def chat_url() -> str:
    """The upstream base URL is an OpenAI SDK's base_url (".../v1"); read at
    start-up, not import, so ``--upstream`` can set it."""
    return (
        os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:9000/v1").rstrip("/")
        + "/chat/completions"
    )


def make_session() -> aiohttp.ClientSession:
    """One pooled session per process.  The default connector caps the pool at 100
    connections, which would cap C=256 against a 50 ms upstream at 2,000 req/s:
    lift it well above any concurrency we test."""
    connector = aiohttp.TCPConnector(limit=2048, limit_per_host=0, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=300)
    api_key = os.environ.get("OPENAI_API_KEY", "sk-bench")
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    return aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers)


def is_sse(content_type: str) -> bool:
    return content_type.startswith("text/event-stream")


UPSTREAM_ERROR = (
    b'{"error":{"message":"upstream unavailable","type":"upstream_error",'
    b'"param":null,"code":"upstream_unavailable"}}'
)


def serve(app: Any, description: str) -> None:
    """CLI entry point: ``--host --port --upstream``, then uvicorn in-process."""
    import uvicorn

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument(
        "--upstream", default=None, help="upstream base URL, e.g. http://127.0.0.1:9000/v1"
    )
    args = parser.parse_args()
    if args.upstream:
        os.environ["BENCH_UPSTREAM"] = args.upstream
    kwargs: dict[str, Any] = dict(
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        lifespan="on",
        workers=1,
        backlog=4096,
    )
    uvicorn.run(app, **kwargs)
