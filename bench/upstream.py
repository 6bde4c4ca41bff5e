"""Fake OpenAI upstream for the benchmark.

A raw asyncio protocol on uvloop with the httptools parser: a few microseconds per
request, so that it never is the bottleneck while it shares a core with the load
generator.  Serves:

- ``POST /v1/chat/completions``: a small ``chat.completion`` with usage, or, with
  ``"stream": true``, an SSE stream (role chunk, 10 content chunks, finish chunk,
  usage chunk when ``stream_options.include_usage``, ``[DONE]``); each SSE event is
  its own write and its own HTTP chunk, as a real provider sends them.
- ``GET /v1/models``: an OpenAI list object.
- ``GET /_bench/config`` / ``POST /_bench/config``: read or set ``delay`` (seconds
  before the response starts) and ``chunk_delay`` (seconds between SSE events) at
  run time, so one upstream process serves every scenario of a benchmark run.
- ``GET /_bench/stats``: counters, to check that a proxy really forwarded.

Run: ``python bench/upstream.py --port 9000 [--delay 0.05] [--chunk-delay 0]``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import signal
from dataclasses import dataclass, field
from typing import Any

import httptools
import orjson

CREATED = 1_700_000_000
# What the stream sends, one content chunk per piece; the JSON reply is the join.
PIECES = [
    "Hello",
    "!",
    " How",
    " can",
    " I",
    " help",
    " you",
    " today",
    "?",
    " 😊",
]
REPLY_TEXT = "".join(PIECES)
PROMPT_TOKENS = 24
COMPLETION_TOKENS = len(PIECES)
MODELS = ["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "o4-mini"]


@dataclass
class Config:
    delay: float = 0.0
    chunk_delay: float = 0.0


@dataclass
class Stats:
    chat_json: int = 0
    chat_stream: int = 0
    models: int = 0
    other: int = 0
    bad_request: int = 0


@dataclass
class Request:
    method: bytes
    url: bytes
    body: bytes
    keep_alive: bool


@dataclass
class Reply:
    """What to write for one request: a head, then body parts (SSE events are
    several parts so they go out as separate writes)."""

    head: bytes
    parts: list[bytes] = field(default_factory=list)
    delayed: bool = False  # subject to Config.delay / chunk_delay
    streaming: bool = False


CONFIG = Config()
STATS = Stats()


# ---------------------------------------------------------------- bodies


def usage() -> dict[str, Any]:
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def completion_body(model: str) -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-bench0000000000000000000000",
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": REPLY_TEXT,
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": usage(),
            "service_tier": "default",
            "system_fingerprint": "fp_bench",
        }
    )


def chunk_event(model: str, delta: dict[str, Any], finish: str | None, **extra: Any) -> bytes:
    chunk: dict[str, Any] = {
        "id": "chatcmpl-bench0000000000000000000000",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "service_tier": "default",
        "system_fingerprint": "fp_bench",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    chunk.update(extra)
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def stream_events(model: str, include_usage: bool) -> list[bytes]:
    events = [chunk_event(model, {"role": "assistant", "content": "", "refusal": None}, None)]
    events += [chunk_event(model, {"content": piece}, None) for piece in PIECES]
    events.append(chunk_event(model, {}, "stop"))
    if include_usage:
        usage_event = chunk_event(model, {}, None, usage=usage())
        # OpenAI's usage chunk has an empty choices list.
        usage_chunk = orjson.loads(usage_event[6:])
        usage_chunk["choices"] = []
        events.append(b"data: " + orjson.dumps(usage_chunk) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


def models_body() -> bytes:
    data = [{"id": m, "object": "model", "created": CREATED, "owned_by": "system"} for m in MODELS]
    return orjson.dumps({"object": "list", "data": data})


def error_body(status: int, message: str) -> bytes:
    code = "invalid_value" if status == 400 else "not_found"
    return orjson.dumps(
        {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": code,
            }
        }
    )


# ---------------------------------------------------------------- HTTP framing

REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed"}


def json_head(status: int, length: int, keep_alive: bool) -> bytes:
    conn = b"keep-alive" if keep_alive else b"close"
    reason = REASONS.get(status, b"Error")
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: %s\r\n\r\n" % (status, reason, length, conn)
    )


def sse_head(keep_alive: bool) -> bytes:
    conn = b"keep-alive" if keep_alive else b"close"
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
        b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\nConnection: %s\r\n\r\n" % conn
    )


def http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"


def json_reply(status: int, body: bytes, keep_alive: bool, delayed: bool = False) -> Reply:
    return Reply(json_head(status, len(body), keep_alive), [body], delayed=delayed)


# ---------------------------------------------------------------- routing

# Replies only depend on (model, stream, include_usage, keep_alive): cache the bytes.
_json_cache: dict[tuple[str, bool], Reply] = {}
_sse_cache: dict[tuple[str, bool, bool], Reply] = {}


def chat_reply(body: bytes, keep_alive: bool) -> Reply:
    try:
        payload = orjson.loads(body)
        model = payload["model"]
        if not isinstance(model, str) or not isinstance(payload.get("messages"), list):
            raise ValueError
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        STATS.bad_request += 1
        return json_reply(
            400, error_body(400, "body must be a chat completion request"), keep_alive
        )
    if payload.get("stream"):
        STATS.chat_stream += 1
        include_usage = bool((payload.get("stream_options") or {}).get("include_usage"))
        key = (model, include_usage, keep_alive)
        reply = _sse_cache.get(key)
        if reply is None:
            parts = [http_chunk(e) for e in stream_events(model, include_usage)] + [LAST_CHUNK]
            reply = _sse_cache[key] = Reply(
                sse_head(keep_alive), parts, delayed=True, streaming=True
            )
        return reply
    STATS.chat_json += 1
    reply = _json_cache.get((model, keep_alive))
    if reply is None:
        reply = _json_cache[(model, keep_alive)] = json_reply(
            200, completion_body(model), keep_alive, True
        )
    return reply


def config_reply(req: Request) -> Reply:
    if req.method == b"POST":
        try:
            update = orjson.loads(req.body or b"{}")
            CONFIG.delay = float(update.get("delay", CONFIG.delay))
            CONFIG.chunk_delay = float(update.get("chunk_delay", CONFIG.chunk_delay))
        except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError):
            return json_reply(400, error_body(400, "config must be JSON"), req.keep_alive)
    body = orjson.dumps({"delay": CONFIG.delay, "chunk_delay": CONFIG.chunk_delay})
    return json_reply(200, body, req.keep_alive)


def route(req: Request) -> Reply:
    path = req.url.split(b"?", 1)[0]
    if path == b"/v1/chat/completions":
        if req.method == b"POST":
            return chat_reply(req.body, req.keep_alive)
        return json_reply(405, error_body(405, "use POST"), req.keep_alive)
    if path == b"/v1/models" and req.method == b"GET":
        STATS.models += 1
        return json_reply(200, models_body(), req.keep_alive)
    if path == b"/_bench/config":
        return config_reply(req)
    if path == b"/_bench/stats":
        return json_reply(200, orjson.dumps(STATS.__dict__), req.keep_alive)
    STATS.other += 1
    return json_reply(404, error_body(404, "no such route"), req.keep_alive)


# ---------------------------------------------------------------- protocol


class UpstreamProtocol(asyncio.Protocol):
    """One connection.  Zero-delay replies are written synchronously from the parser
    callback (the fast path); delayed ones go through a per-connection task so
    pipelined requests are still answered in order."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []
        self.pending: collections.deque[Reply] = collections.deque()
        self.worker: asyncio.Task[None] | None = None
        self.closing = False

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.close()
        except httptools.HttpParserError:
            self.write_now(json_reply(400, error_body(400, "malformed HTTP"), False))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self.worker is not None:
            self.worker.cancel()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        req = Request(
            self.parser.get_method(), self.url, b"".join(self.body), self.parser.should_keep_alive()
        )
        reply = route(req)
        needs_wait = reply.delayed and (
            CONFIG.delay > 0 or (reply.streaming and CONFIG.chunk_delay > 0)
        )
        if not needs_wait and not self.pending and self.worker is None:
            self.write_now(reply)
            return
        self.pending.append(reply)
        if self.worker is None:
            self.worker = asyncio.get_running_loop().create_task(self.drain())

    # writing
    def write_now(self, reply: Reply) -> None:
        if self.transport is None or self.closing:
            return
        if reply.streaming:
            # One write per SSE event: separate segments, as a provider streams them.
            self.transport.write(reply.head)
            for part in reply.parts:
                self.transport.write(part)
        else:
            self.transport.write(reply.head + b"".join(reply.parts))
        if b"Connection: close" in reply.head:
            self.close()

    async def drain(self) -> None:
        try:
            while self.pending and not self.closing:
                reply = self.pending.popleft()
                await self.write_delayed(reply)
        finally:
            self.worker = None

    async def write_delayed(self, reply: Reply) -> None:
        if reply.delayed and CONFIG.delay > 0:
            await asyncio.sleep(CONFIG.delay)
        if not (reply.streaming and CONFIG.chunk_delay > 0):
            self.write_now(reply)
            return
        assert self.transport is not None
        self.transport.write(reply.head)
        for i, part in enumerate(reply.parts):
            if i and part is not LAST_CHUNK:
                await asyncio.sleep(CONFIG.chunk_delay)
            if self.closing:
                return
            self.transport.write(part)
        if b"Connection: close" in reply.head:
            self.close()

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()


# ---------------------------------------------------------------- main


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        UpstreamProtocol, host, port, backlog=4096, reuse_address=True
    )
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument(
        "--delay", type=float, default=0.0, help="seconds before each chat reply starts"
    )
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between SSE events")
    args = parser.parse_args()
    CONFIG.delay, CONFIG.chunk_delay = args.delay, args.chunk_delay
    try:
        import uvloop

        uvloop.run(serve(args.host, args.port))
    except ImportError:  # still correct, just slower
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
