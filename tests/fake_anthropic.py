"""A fake of Anthropic's Messages API on loopback, speaking its real wire protocol.

Built on ``FakeUpstream`` (same background thread, scripts and request records):
``POST /v1/messages`` answers a JSON message or, for ``"stream": true``, an SSE stream
with ``event:`` lines; ``GET /v1/models`` answers Anthropic's list shape; errors are
``{"type": "error", "error": {"type", "message"}}``. Like the real API it answers 401
without the expected ``x-api-key`` and ``anthropic-version`` headers and 400 for a body
without ``model``, ``max_tokens`` or ``messages``, so what the gateway sends is checked
on the wire. Unscripted requests get an echo of the last user text, or
``"tool said: …"`` when the last user turn carries tool results.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from aiohttp import web

from tests.fake_upstream import FakeUpstream, Reply, RequestRecord, fake_token_count

KEY = "sk-ant-fake-secret"
USAGE = {"input_tokens": 7, "output_tokens": 3}
_ids = itertools.count(1)


def event(name: str, data: dict[str, Any]) -> str:
    """One SSE event as Anthropic frames it."""
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def error_body(type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": type, "message": message}}


def error(status: int, type: str, message: str = "fake error", retry_after: str | None = None):
    headers = {"retry-after": retry_after} if retry_after is not None else None
    return Reply.json(error_body(type, message), status, headers)


def events(items: list[str], cut_after: int | None = None, delay: float = 0.0) -> Reply:
    """A raw event stream (see ``event``); ``cut_after`` aborts the connection."""
    return Reply.sse(items, delay=delay, cut_after=cut_after, done=False)


def message(
    text: str | None = None,
    tool_uses: list[dict[str, Any]] | None = None,
    thinking: str | None = None,
    stop_reason: str | None = None,
    usage: dict[str, int] | None = None,
) -> Reply:
    """A message, as JSON or as its event stream when the request asks for one.

    ``text=None`` without tool uses means the echo text; tool uses are
    ``{"name", "input", "id"?}``.
    """
    return _MessageReply(text, tool_uses or [], thinking, stop_reason, usage)


def message_events(msg: dict[str, Any], pieces: int = 3) -> list[str]:
    """The event stream the real API sends for ``msg``, deltas split in ``pieces``."""
    usage = msg["usage"]
    start = {
        **msg,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": 1},
    }
    out = [
        event("message_start", {"type": "message_start", "message": start}),
        event("ping", {"type": "ping"}),
    ]
    for index, block in enumerate(msg["content"]):
        out += _block_events(index, block, pieces)
    delta = {"stop_reason": msg["stop_reason"], "stop_sequence": None}
    out.append(
        event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": delta,
                "usage": {"output_tokens": usage["output_tokens"]},
            },
        )
    )
    out.append(event("message_stop", {"type": "message_stop"}))
    return out


def _block_events(index: int, block: dict[str, Any], pieces: int) -> list[str]:
    kind = block["type"]
    if kind == "tool_use":
        head = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        key, delta_type, body = "partial_json", "input_json_delta", json.dumps(block["input"])
    else:  # text or thinking
        head, key, delta_type, body = {"type": kind, kind: ""}, kind, f"{kind}_delta", block[kind]
    out = [
        event(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": head},
        )
    ]
    size = max(1, -(-len(body) // pieces))
    for i in range(0, len(body), size):
        delta = {"type": delta_type, key: body[i : i + size]}
        out.append(
            event(
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        )
    if kind == "thinking":
        delta = {"type": "signature_delta", "signature": "c2lnbmF0dXJl"}
        out.append(
            event(
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        )
    out.append(event("content_block_stop", {"type": "content_block_stop", "index": index}))
    return out


def reply_text(body: Any) -> str:
    """The default reply for a Messages request body."""
    turns = body.get("messages") or []
    last = next((t for t in reversed(turns) if t.get("role") == "user"), {})
    content = last.get("content")
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
    results = [b for b in blocks if b.get("type") == "tool_result"]
    if results:
        return "tool said: " + " ".join(str(b.get("content", "")) for b in results)
    return "echo: " + " ".join(b["text"] for b in blocks if b.get("type") == "text")


class _MessageReply(Reply):
    def __init__(
        self,
        text: str | None,
        tool_uses: list[dict[str, Any]],
        thinking: str | None,
        stop_reason: str | None,
        usage: dict[str, int] | None,
    ) -> None:
        self.text, self.tool_uses, self.thinking = text, tool_uses, thinking
        self.stop_reason, self.usage = stop_reason, usage

    async def respond(self, request: web.Request, record: RequestRecord) -> web.StreamResponse:
        body = record.json if isinstance(record.json, dict) else {}
        content: list[dict[str, Any]] = []
        if self.thinking is not None:
            content.append(
                {"type": "thinking", "thinking": self.thinking, "signature": "c2lnbmF0dXJl"}
            )
        text = self.text if self.text is not None or self.tool_uses else reply_text(body)
        if text:
            content.append({"type": "text", "text": text})
        for use in self.tool_uses:
            content.append(
                {
                    "type": "tool_use",
                    "id": use.get("id") or f"toolu_{next(_ids)}",
                    "name": use["name"],
                    "input": use["input"],
                }
            )
        msg = {
            "id": f"msg_fake{next(_ids)}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "claude-fake"),
            "content": content,
            "stop_reason": self.stop_reason or ("tool_use" if self.tool_uses else "end_turn"),
            "stop_sequence": None,
            "usage": dict(self.usage or USAGE),
        }
        if body.get("stream") is True:
            return await events(message_events(msg)).respond(request, record)
        return await Reply.json(msg).respond(request, record)


class FakeAnthropic(FakeUpstream):
    """``with FakeAnthropic() as fake:``; ``fake.script(...)`` queues Messages replies."""

    chat_path = "/v1/messages"
    count_path = "/v1/messages/count_tokens"

    def __init__(self, models: list[str] | None = None, api_key: str = KEY) -> None:
        super().__init__(models or ["claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"])
        self.api_key = api_key

    @property
    def messages_requests(self) -> list[RequestRecord]:
        return [r for r in self.requests if r.path == "/v1/messages"]

    def _auth_error(self, record: RequestRecord) -> Reply | None:
        if record.headers.get("x-api-key") != self.api_key:
            return error(401, "authentication_error", "invalid x-api-key")
        if not record.headers.get("anthropic-version"):
            return error(400, "invalid_request_error", "anthropic-version: header is required")
        return None

    async def _default_models(self, request: web.Request, record: RequestRecord) -> web.Response:
        failed = self._auth_error(record)
        if failed is not None:
            return await failed.respond(request, record)
        data = [
            {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
            for m in self.models
        ]
        return web.json_response(
            {
                "data": data,
                "has_more": False,
                "first_id": self.models[0],
                "last_id": self.models[-1],
            }
        )

    async def _default_count(self, request: web.Request, record: RequestRecord):
        reply = self._auth_error(record) or Reply.json(
            {"input_tokens": fake_token_count(record.json)}
        )
        return await reply.respond(request, record)

    async def _default_chat(self, request: web.Request, record: RequestRecord):
        reply = self._auth_error(record)
        body = record.json
        if reply is None and not (
            isinstance(body, dict)
            and isinstance(body.get("model"), str)
            and isinstance(body.get("max_tokens"), int)
            and body.get("messages")
        ):
            reply = error(400, "invalid_request_error", "model, max_tokens, messages required")
        return await (reply or message()).respond(request, record)
