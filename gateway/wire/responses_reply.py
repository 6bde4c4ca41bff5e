"""Internal replies → OpenAI Responses objects, and internal stream events → typed events.

`skeleton` is the `response` object before any output (every field the request
echoes back); `finished` fills it from a whole `Completion`; `ResponseEvents` turns a
stream of internal events into the documented typed events, in order and numbered:
`response.created`, `response.in_progress`, then per output item `output_item.added`,
its content part's `added`, deltas, `done`s and `output_item.done`, and at the end
`response.completed` (`response.incomplete` when the model ran out of tokens) or
`response.failed` carrying the error.

Output items: a `reasoning` item for the provider's `reasoning_content` (its text as
`reasoning_text` content), a `message` with one `output_text` part, and one
`function_call` per tool call, in the order the model produced them.
"""

from __future__ import annotations

import time
from typing import Any

from gateway import errors
from gateway.wire.internal import (
    Completion,
    Finish,
    ReasoningDelta,
    Start,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageEvent,
)
from gateway.wire.responses import ResponsesRequest, encrypt_reasoning, new_id

_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def skeleton(request: ResponsesRequest, response_id: str, created_at: float) -> dict[str, Any]:
    """The response object as `response.created` shows it: in progress, no output."""
    body = request.body
    text = body.get("text") if isinstance(body.get("text"), dict) else None
    reasoning = body.get("reasoning") if isinstance(body.get("reasoning"), dict) else None
    sent_tools = body.get("tools")
    if not isinstance(sent_tools, list):
        sent_tools = []
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(created_at),
        "status": "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": body.get("metadata") or {},
        "model": request.model,
        "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
        "previous_response_id": request.previous_response_id,
        "reasoning": {
            "effort": (reasoning or {}).get("effort"),
            "summary": (reasoning or {}).get("summary"),
        },
        "store": request.store,
        "temperature": body.get("temperature"),
        "text": {"format": (text or {}).get("format") or {"type": "text"}},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": [t for t in sent_tools if isinstance(t, dict) and t.get("type") == "function"],
        "top_p": body.get("top_p"),
        "truncation": "disabled",
        "usage": None,
        "user": body.get("user"),
    }


def finished(
    response: dict[str, Any], completion: Completion, *, encrypted_reasoning: bool = False
) -> dict[str, Any]:
    """`response` completed with a whole reply's output and usage."""
    output: list[dict[str, Any]] = []
    if completion.reasoning:
        output.append(_reasoning_item(new_id("rs"), completion.reasoning, encrypted_reasoning))
    if completion.content:
        output.append(_message_item(new_id("msg"), completion.content))
    for call in completion.tool_calls:
        output.append(_call_item(new_id("fc"), call.id, call.name, call.arguments))
    return _close(response, output, completion.finish_reason, completion.usage)


def usage_object(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def error_object(exc: errors.GatewayError) -> dict[str, Any]:
    """The error of a failed response. Its `code` is ours (`upstream_timeout`,
    `context_length_exceeded`, …), as OpenAI's own streams also send codes beyond the
    few its schema lists, and clients such as Codex act on them."""
    return {
        "code": exc.code or exc.type,
        "message": exc.message,
        "param": exc.param,
        "type": exc.type,
    }


class ResponseEvents:
    """One response's typed stream events; feed it internal events in order.

    Each method returns the events to send now, each with its `sequence_number`.
    """

    def __init__(self, response: dict[str, Any], *, encrypted_reasoning: bool = False) -> None:
        self.response = response
        self._encrypted = encrypted_reasoning
        self._seq = 0
        self._output: list[dict[str, Any]] = []
        self._positions: dict[str, int] = {}  # item id → output index
        self._open: dict[str, Any] | None = None  # the message or reasoning item being written
        self._open_kind: str | None = None  # its type
        self._open_where: dict[str, Any] = {}  # its item_id, output_index, content_index
        self._open_text: list[str] = []
        self._calls: dict[int, dict[str, Any]] = {}  # tool call index → its item
        self._call_args: dict[int, list[str]] = {}
        self._finish: str = "stop"
        self._usage = Usage()

    def start(self) -> list[dict[str, Any]]:
        # Shallow copies suffice here and below: what changes later is replaced, never
        # mutated in place, and deep copies cost more than the rest of an event.
        snapshot = {**self.response, "output": []}
        return [
            self._event("response.created", response=snapshot),
            self._event("response.in_progress", response=snapshot),
        ]

    def feed(self, event: StreamEvent) -> list[dict[str, Any]]:
        if type(event) is TextDelta and self._open_kind == "message":
            # The common case, kept short: more text for the message being written.
            if not event.text:
                return []
            self._open_text.append(event.text)
            seq = self._seq
            self._seq += 1
            return [
                {
                    "type": "response.output_text.delta",
                    "sequence_number": seq,
                    **self._open_where,
                    "delta": event.text,
                    "logprobs": [],
                }
            ]
        if isinstance(event, TextDelta):
            return self._text("message", event.text) if event.text else []
        if isinstance(event, ReasoningDelta):
            return self._text("reasoning", event.text) if event.text else []
        if isinstance(event, ToolCallDelta):
            return self._tool_call(event)
        if isinstance(event, UsageEvent):
            self._usage = event.usage
        elif isinstance(event, Finish):
            self._finish = event.reason
            if event.usage is not None:
                self._usage = event.usage
        elif isinstance(event, Start):
            pass
        return []

    def finish(self) -> list[dict[str, Any]]:
        """Close what is open and complete the response."""
        events = self._close_open()
        for index in sorted(self._calls):
            item = self._calls[index]
            item["arguments"] = "".join(self._call_args[index])
            item["status"] = "completed"
            where = {"item_id": item["id"], "output_index": self._positions[item["id"]]}
            events.append(
                self._event(
                    "response.function_call_arguments.done", **where, arguments=item["arguments"]
                )
            )
            events.append(self._item_done(item))
        self._calls.clear()
        final = _close(self.response, self._output, self._finish, self._usage)
        kind = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
        events.append(self._event(kind, response=final))
        return events

    def fail(self, exc: errors.GatewayError) -> list[dict[str, Any]]:
        """End the response as failed, with the output so far (unfinished items as
        `incomplete`, holding what they had)."""
        item = self._open
        if item is not None:
            text = "".join(self._open_text)
            done = (
                _message_item(item["id"], text)
                if item["type"] == "message"
                else _reasoning_item(item["id"], text, self._encrypted)
            )
            item.clear()
            item.update(done, status="incomplete")
            self._open = self._open_kind = None
        for index, call in self._calls.items():
            call.update(arguments="".join(self._call_args[index]), status="incomplete")
        self.response.update(
            status="failed", error=error_object(exc), output=self._output, usage=None
        )
        return [self._event("response.failed", response=self.response)]

    def error(self, exc: errors.GatewayError) -> list[dict[str, Any]]:
        """An `error` event, for a failure before the response exists."""
        return [self._event("error", **error_object(exc))]

    # -- items ---------------------------------------------------------------------

    def _text(self, kind: str, text: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        if self._open is None or self._open["type"] != kind:
            events += self._close_open()
            events += self._open_item(kind)
        assert self._open is not None
        self._open_text.append(text)
        name = (
            "response.output_text.delta" if kind == "message" else "response.reasoning_text.delta"
        )
        extra: dict[str, Any] = {"logprobs": []} if kind == "message" else {}
        events.append(self._event(name, **self._where(self._open), delta=text, **extra))
        return events

    def _open_item(self, kind: str) -> list[dict[str, Any]]:
        item: dict[str, Any]
        if kind == "message":
            item = {
                "id": new_id("msg"),
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            part: dict[str, Any] = _output_text("")
        else:
            item = {
                "id": new_id("rs"),
                "type": "reasoning",
                "status": "in_progress",
                "summary": [],
                "content": [],
            }
            part = {"type": "reasoning_text", "text": ""}
        self._open, self._open_text, self._open_kind = item, [], kind
        self._open_where = {
            "item_id": item["id"],
            "output_index": len(self._output),
            "content_index": 0,
        }
        self._positions[item["id"]] = len(self._output)
        self._output.append(item)
        return [
            self._event(
                "response.output_item.added",
                output_index=len(self._output) - 1,
                item=dict(item),
            ),
            self._event("response.content_part.added", **self._where(item), part=part),
        ]

    def _close_open(self) -> list[dict[str, Any]]:
        item = self._open
        if item is None:
            return []
        self._open = self._open_kind = None
        text = "".join(self._open_text)
        where = self._where(item)
        if item["type"] == "message":
            part = _output_text(text)
            done = self._event("response.output_text.done", **where, text=text, logprobs=[])
            finished_item = _message_item(item["id"], text)
        else:
            part = {"type": "reasoning_text", "text": text}
            done = self._event("response.reasoning_text.done", **where, text=text)
            finished_item = _reasoning_item(item["id"], text, self._encrypted)
        item.clear()
        item.update(finished_item)
        return [
            done,
            self._event("response.content_part.done", **where, part=part),
            self._item_done(item),
        ]

    def _tool_call(self, delta: ToolCallDelta) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        item = self._calls.get(delta.index)
        if item is None:
            events += self._close_open()
            item = {
                "id": new_id("fc"),
                "type": "function_call",
                "status": "in_progress",
                "arguments": "",
                "call_id": delta.id or new_id("call"),
                "name": delta.name or "",
            }
            self._calls[delta.index] = item
            self._call_args[delta.index] = []
            self._positions[item["id"]] = len(self._output)
            self._output.append(item)
            events.append(
                self._event(
                    "response.output_item.added",
                    output_index=len(self._output) - 1,
                    item=dict(item),
                )
            )
        if delta.arguments:
            self._call_args[delta.index].append(delta.arguments)
            events.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=self._positions[item["id"]],
                    delta=delta.arguments,
                )
            )
        return events

    def _item_done(self, item: dict[str, Any]) -> dict[str, Any]:
        return self._event(
            "response.output_item.done", output_index=self._positions[item["id"]], item=item
        )

    def _where(self, item: dict[str, Any]) -> dict[str, Any]:
        return {
            "item_id": item["id"],
            "output_index": self._positions[item["id"]],
            "content_index": 0,
        }

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return event


def _close(
    response: dict[str, Any], output: list[dict[str, Any]], finish: str, usage: Usage
) -> dict[str, Any]:
    reason = _INCOMPLETE.get(finish)
    response.update(
        status="incomplete" if reason else "completed",
        incomplete_details={"reason": reason} if reason else None,
        output=output,
        usage=usage_object(usage),
        completed_at=int(time.time()),
    )
    return response


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(item_id: str, text: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [_output_text(text)],
    }


def _reasoning_item(item_id: str, text: str, encrypted: bool) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": item_id,
        "type": "reasoning",
        "status": "completed",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text}],
    }
    if encrypted:
        item["encrypted_content"] = encrypt_reasoning(text)
    return item


def _call_item(item_id: str, call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": "completed",
        "arguments": arguments,
        "call_id": call_id,
        "name": name,
    }
