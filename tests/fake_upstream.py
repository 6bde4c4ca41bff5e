"""A scriptable fake of an OpenAI-compatible LLM provider, for tests.

``FakeUpstream`` is a real ``aiohttp.web`` server on 127.0.0.1 (an ephemeral
port), run by a background thread with its own event loop, so sync and async
tests can both point real HTTP clients at ``fake.base_url``. It serves
``GET /v1/models``, ``POST /v1/chat/completions`` (JSON or SSE) and Moonshot's
``POST /v1/tokenizers/estimate-token-count`` (see ``fake_token_count``), records
every request, and answers from queues of scripted ``Reply`` objects, falling
back to an echo of the last user message (or the model list) when a queue is empty.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Union

from aiohttp import web

Req = web.Request
Resp = web.StreamResponse
Event = Mapping[str, Any] | str
DEFAULT_USAGE: dict[str, int] = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    429: "rate_limit_error",
}
_ids = itertools.count(1)


class Headers(dict[str, str]):
    """Request headers: a dict with lower-cased keys and case-insensitive lookups."""

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


@dataclass(frozen=True)
class RequestRecord:
    """One request as the fake received it (``json`` is None when the body is not JSON)."""

    method: str
    path: str
    headers: Headers
    raw: bytes
    json: Any
    query: dict[str, str] = field(default_factory=dict)
    received_at: float = field(default_factory=time.time)


ReplyLike = Union["Reply", Callable[[RequestRecord], "Reply | None"]]


class _Abort(Resp):
    """Returned after ``transport.abort()``: aiohttp then treats the request as a disconnect."""

    async def prepare(self, request: web.BaseRequest) -> Any:
        raise ConnectionResetError("fake upstream dropped the connection")


def _abort(request: Req) -> Resp:
    if request.transport is not None:
        request.transport.abort()
    return _Abort()


def _sse_bytes(event: Event) -> bytes:
    if isinstance(event, str):
        return event.encode()
    return b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"


def _pieces(text: str, n: int = 3) -> list[str]:
    """Split ``text`` into about ``n`` non-empty pieces."""
    size = max(1, -(-len(text) // n))
    return [text[i : i + size] for i in range(0, len(text), size)]


def echo_text(body: Any) -> str:
    """The default reply: ``"echo: "`` + the last user message (list content: text parts
    joined with a space)."""
    messages = body.get("messages") if isinstance(body, dict) else None
    for msg in reversed(messages if isinstance(messages, list) else []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, list):
                content = " ".join(
                    str(p.get("text", ""))
                    for p in content
                    if isinstance(p, dict) and p.get("type") == "text"
                )
            return "echo: " + (content if isinstance(content, str) else "")
    return "echo: "


def fake_token_count(body: Any) -> int:
    """The fakes' token count: one per word of the messages' text, plus 3 per message."""
    messages = body.get("messages") if isinstance(body, dict) else None
    total = 0
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        parts = content if isinstance(content, list) else [{"text": content}]
        words = sum(len(str(p.get("text") or "").split()) for p in parts if isinstance(p, dict))
        total += 3 + words
    return total


class Reply:
    """A scripted answer; build one with the static constructors."""

    async def respond(self, request: Req, record: RequestRecord) -> Resp:
        raise NotImplementedError

    @staticmethod
    def json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
        """Any JSON body, sent as is (even when the request asked for a stream)."""
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        return _RawReply(json.dumps(body).encode(), status, hdrs)

    @staticmethod
    def error(
        status: int,
        message: str | None = None,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """``{"error": {message, type, param, code}}``, plus ``Retry-After`` if given.
        ``type`` defaults from the status (429 -> rate_limit_error, 5xx -> server_error, ...)."""
        default_type = "server_error" if status >= 500 else "invalid_request_error"
        err = {
            "message": message or f"fake upstream error {status}",
            "type": type or _ERROR_TYPES.get(status, default_type),
            "param": param,
            "code": code,
        }
        hdrs = dict(headers or {})
        if retry_after is not None:
            hdrs["Retry-After"] = str(retry_after)
        return Reply.json({"error": err}, status, hdrs)

    @staticmethod
    def completion(
        content: str | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
        usage: dict[str, Any] | None = None,
        finish_reason: str | None = None,
        reasoning_content: str | None = None,
        model: str | None = None,
    ) -> Reply:
        """A ``chat.completion``, or its SSE chunks when the request has ``"stream": true``.

        ``content=None`` without tool calls means the echo text. ``tool_calls`` items are
        OpenAI-shaped (``{"id", "type", "function": {"name", "arguments"}}``) or shorthand
        ``{"name", "arguments", "id"?}``; dict ``arguments`` are JSON-encoded. ``model``
        defaults to the request's model.
        """
        calls = []
        for call in tool_calls or []:
            fn = call.get("function", call)
            args = fn.get("arguments", "")
            calls.append(
                {
                    "id": call.get("id") or f"call_fake{next(_ids)}",
                    "type": "function",
                    "function": {
                        "name": fn["name"],
                        "arguments": args if isinstance(args, str) else json.dumps(args),
                    },
                }
            )
        return _CompletionReply(content, calls, usage, finish_reason, reasoning_content, model)

    @staticmethod
    def sse(
        events: list[Event],
        delay: float = 0.0,
        cut_after: int | None = None,
        done: bool = True,
        status: int = 200,
    ) -> Reply:
        """Raw SSE: dicts sent as ``data: <json>``, strings verbatim, ``delay`` s between
        events; ``cut_after=n`` aborts the TCP connection after n events (mid chunked body);
        ``done`` appends ``data: [DONE]`` (never sent on a cut stream)."""
        return _SseReply(list(events), delay, cut_after, done, status)

    @staticmethod
    def empty(status: int = 200, content_type: str = "application/json") -> Reply:
        """A response with an empty body."""
        return _RawReply(b"", status, {"Content-Type": content_type})

    @staticmethod
    def delay(seconds: float, then: Reply) -> Reply:
        """Wait ``seconds`` before answering with ``then``."""
        return _DelayReply(seconds, then)

    @staticmethod
    def hold(gate: Future[None], then: Reply) -> Reply:
        """Answer with ``then`` once ``gate`` is done (set it from any thread): a model
        that takes as long as the test wants."""
        return _HoldReply(gate, then)

    @staticmethod
    def drop() -> Reply:
        """Close the connection without sending any response."""
        return _DropReply()


@dataclass
class _RawReply(Reply):
    body: bytes
    status: int
    headers: dict[str, str]

    async def respond(self, request: Req, record: RequestRecord) -> Resp:
        return web.Response(status=self.status, body=self.body, headers=self.headers)


@dataclass
class _DelayReply(Reply):
    seconds: float
    then: Reply

    async def respond(self, request: Req, record: RequestRecord) -> Resp:
        await asyncio.sleep(self.seconds)
        return await self.then.respond(request, record)


@dataclass
class _HoldReply(Reply):
    gate: Future[None]
    then: Reply

    async def respond(self, request: Req, record: RequestRecord) -> Resp:
        await asyncio.wrap_future(self.gate)
        return await self.then.respond(request, record)


class _DropReply(Reply):
    async def respond(self, request: Req, record: RequestRecord) -> Resp:
        return _abort(request)


@dataclass
class _SseReply(Reply):
    events: list[Event]
    gap: float = 0.0
    cut_after: int | None = None
    done: bool = True
    status: int = 200

    async def respond(self, request: Req, record: RequestRecord) -> Resp:
        resp = Resp(
            status=self.status,
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
        )
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i, event in enumerate(self.events):
            if self.cut_after is not None and i >= self.cut_after:
                break
            if i and self.gap:
                await asyncio.sleep(self.gap)
            await resp.write(_sse_bytes(event))
        if self.cut_after is not None:
            return _abort(request)
        if self.done:
            await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


@dataclass
class _CompletionReply(Reply):
    content: str | None
    tool_calls: list[dict[str, Any]]
    usage: dict[str, Any] | None
    finish_reason: str | None
    reasoning_content: str | None
    model: str | None

    async def respond(self, request: Req, record: RequestRecord) -> Resp:
        body = record.json if isinstance(record.json, dict) else {}
        content = self.content
        if content is None and not self.tool_calls:
            content = echo_text(body)
        finish = self.finish_reason or ("tool_calls" if self.tool_calls else "stop")
        usage = self.usage if self.usage is not None else dict(DEFAULT_USAGE)
        base = {
            "id": f"chatcmpl-fake{next(_ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model or body.get("model") or "fake",
        }
        if body.get("stream") is True:
            base["object"] = "chat.completion.chunk"
            with_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            events = self._chunks(base, content, finish, usage, with_usage)
            return await _SseReply(events).respond(request, record)
        message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
        if self.reasoning_content is not None:
            message["reasoning_content"] = self.reasoning_content
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        reply = Reply.json({**base, "choices": [choice], "usage": usage})
        return await reply.respond(request, record)

    def _chunks(
        self,
        base: dict[str, Any],
        content: str | None,
        finish: str,
        usage: dict[str, Any],
        with_usage: bool,
    ) -> list[Event]:
        def chunk(delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
            return {**base, "choices": [choice], **({"usage": None} if with_usage else {})}

        events: list[Event] = [chunk({"role": "assistant", "content": "" if content else None})]
        events += [chunk({"reasoning_content": p}) for p in _pieces(self.reasoning_content or "")]
        events += [chunk({"content": p}) for p in _pieces(content or "")]
        for i, call in enumerate(self.tool_calls):
            head = {
                "index": i,
                "id": call["id"],
                "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""},
            }
            events.append(chunk({"tool_calls": [head]}))
            events += [
                chunk({"tool_calls": [{"index": i, "function": {"arguments": p}}]})
                for p in _pieces(call["function"]["arguments"])
            ]
        events.append(chunk({}, finish))
        if with_usage:
            events.append({**base, "choices": [], "usage": usage})
        return events


class FakeUpstream:
    """The fake provider: ``with FakeUpstream() as fake:`` or ``start()`` / ``stop()``."""

    # Where chat requests go; a fake of another wire protocol overrides it.
    chat_path = "/v1/chat/completions"
    # Where prompt tokens are counted (Moonshot's estimate endpoint); likewise.
    count_path = "/v1/tokenizers/estimate-token-count"

    def __init__(self, models: list[str] | None = None) -> None:
        self.models: list[str] = list(models) if models is not None else ["fake-model"]
        self.port = 0
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []
        self._chat_script: deque[ReplyLike] = deque()
        self._models_script: deque[ReplyLike] = deque()
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *replies: ReplyLike) -> None:
        """Queue replies for chat completions, one consumed per request, in order."""
        with self._lock:
            self._chat_script.extend(replies)

    def script_models(self, *replies: ReplyLike) -> None:
        """Queue replies for ``GET /v1/models``."""
        with self._lock:
            self._models_script.extend(replies)

    @property
    def pending(self) -> int:
        """How many scripted chat replies are still queued."""
        with self._lock:
            return len(self._chat_script)

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    @property
    def chat_requests(self) -> list[RequestRecord]:
        return [r for r in self.requests if r.path == self.chat_path]

    @property
    def count_requests(self) -> list[RequestRecord]:
        return [r for r in self.requests if r.path == self.count_path]

    @property
    def models_requests(self) -> list[RequestRecord]:
        return [r for r in self.requests if r.path == "/v1/models"]

    def reset(self) -> None:
        """Forget all scripts and recorded requests."""
        with self._lock:
            self._records.clear()
            self._chat_script.clear()
            self._models_script.clear()

    def start(self) -> FakeUpstream:
        """Bind 127.0.0.1:0 and serve from a background thread (fine inside a running loop)."""
        if self._thread is not None:
            return self
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self.port = self._sock.getsockname()[1]
        started: Future[None] = Future()
        self._thread = threading.Thread(
            target=asyncio.run,
            args=(self._serve(started),),
            name=f"fake-upstream-{self.port}",
            daemon=True,
        )
        self._thread.start()
        try:
            started.result(timeout=10)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop serving, cancel in-flight handlers, join the thread. Idempotent."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        self._thread = self._loop = self._stopping = None
        if loop is not None and stopping is not None:
            try:
                loop.call_soon_threadsafe(stopping.set)
            except RuntimeError:  # the loop is already closed
                pass
        if thread is not None:
            thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _serve(self, started: Future[None]) -> None:
        assert self._sock is not None
        self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
        stopping = self._stopping
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/v1/models", self._route(self._models_script, self._default_models))
        app.router.add_post(self.chat_path, self._route(self._chat_script, self._default_chat))
        app.router.add_post(self.count_path, self._route(None, self._default_count))
        app.router.add_route("*", "/{tail:.*}", self._route(None, self._not_found))
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2, handle_signals=False)
        try:
            await runner.setup()
            await web.SockSite(runner, self._sock).start()
            started.set_result(None)
            await stopping.wait()
        except Exception as exc:
            if not started.done():
                started.set_exception(exc)
        finally:
            await runner.cleanup()

    def _route(
        self,
        script: deque[ReplyLike] | None,
        default: Callable[[Req, RequestRecord], Awaitable[Resp]],
    ) -> Callable[[Req], Awaitable[Resp]]:
        async def handle(request: Req) -> Resp:
            raw = await request.read()
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = None
            headers = Headers((k.lower(), v) for k, v in request.headers.items())
            record = RequestRecord(
                request.method, request.path, headers, raw, parsed, dict(request.query)
            )
            with self._lock:
                self._records.append(record)
                reply = script.popleft() if script else None
            if reply is not None and not isinstance(reply, Reply):
                reply = reply(record)
                if inspect.isawaitable(reply):
                    reply = await reply
            if reply is None:
                return await default(request, record)
            return await reply.respond(request, record)

        return handle

    async def _default_models(self, request: Req, record: RequestRecord) -> Resp:
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]
        return web.json_response({"object": "list", "data": data})

    async def _default_chat(self, request: Req, record: RequestRecord) -> Resp:
        if isinstance(record.json, dict):
            return await Reply.completion().respond(request, record)
        reply = Reply.error(400, "body is not a JSON object", code="invalid_json")
        return await reply.respond(request, record)

    async def _default_count(self, request: Req, record: RequestRecord) -> Resp:
        """Moonshot's `{model, messages}` → `{"data": {"total_tokens": N}}`."""
        return web.json_response({"data": {"total_tokens": fake_token_count(record.json)}})

    async def _not_found(self, request: Req, record: RequestRecord) -> Resp:
        msg = f"fake upstream has no route {request.method} {request.path}"
        return await Reply.error(404, msg, code="not_found").respond(request, record)
