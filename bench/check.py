"""Correctness gate run once per target before it is measured: a fast proxy that
answers errors, drops the usage chunk or cuts the stream before ``[DONE]`` must not
get a number.  One JSON request and one streamed request, checked against what the
fake upstream sends."""

from __future__ import annotations

import http.client
import json

from common import MESSAGES_PATH, RESPONSES_PATH, chat_body, messages_body, responses_body
from upstream import REPLY_TEXT


def _post(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request(
            "POST", path, body=body, headers={"Content-Type": "application/json", **headers}
        )
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type", ""), resp.read()
    finally:
        conn.close()


def check_json(port: int, path: str, model: str, headers: dict[str, str]) -> str | None:
    status, _, raw = _post(port, path, chat_body(model, False), headers)
    if status != 200:
        return f"JSON request got {status}: {raw[:200]!r}"
    try:
        reply = json.loads(raw)
        content = reply["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return f"JSON reply is not a chat.completion: {raw[:200]!r}"
    if content != REPLY_TEXT:
        return f"JSON reply content {content!r} != upstream's {REPLY_TEXT!r}"
    if not isinstance(reply.get("usage"), dict):
        return "JSON reply has no usage"
    return None


def sse_events(raw: bytes) -> list[str]:
    """The ``data:`` payloads of an SSE body, in order."""
    events = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        data = [line[5:].strip() for line in block.split(b"\n") if line.startswith(b"data:")]
        if data:
            events.append(b"\n".join(data).decode())
    return events


def check_sse(port: int, path: str, model: str, headers: dict[str, str]) -> str | None:
    status, ctype, raw = _post(port, path, chat_body(model, True), headers)
    if status != 200:
        return f"stream request got {status}: {raw[:200]!r}"
    if not ctype.startswith("text/event-stream"):
        return f"stream reply has Content-Type {ctype!r}"
    events = sse_events(raw)
    if not events or events[-1] != "[DONE]":
        return "stream does not end with [DONE]"
    try:
        chunks = [json.loads(e) for e in events[:-1]]
    except ValueError:
        return "stream has a non-JSON event"
    text = "".join(
        (c.get("choices") or [{}])[0].get("delta", {}).get("content") or ""
        for c in chunks
        if c.get("choices")
    )
    if text != REPLY_TEXT:
        return f"streamed content {text!r} != upstream's {REPLY_TEXT!r}"
    if not any(isinstance(c.get("usage"), dict) for c in chunks):
        return "stream has no usage chunk although include_usage was asked"
    return None


def smoke(port: int, path: str, model: str, headers: dict[str, str]) -> str | None:
    """None when the target relays both kinds correctly, else what went wrong."""
    try:
        if path == MESSAGES_PATH:
            return check_messages_json(port, path, model, headers) or check_messages_sse(
                port, path, model, headers
            )
        if path == RESPONSES_PATH:
            return check_responses_json(port, path, model, headers) or check_responses_sse(
                port, path, model, headers
            )
        return check_json(port, path, model, headers) or check_sse(port, path, model, headers)
    except (OSError, http.client.HTTPException) as exc:
        return f"{type(exc).__name__}: {exc}"


def check_messages_json(port: int, path: str, model: str, headers: dict[str, str]) -> str | None:
    status, _, raw = _post(port, path, messages_body(model, False), headers)
    if status != 200:
        return f"JSON request got {status}: {raw[:200]!r}"
    try:
        reply = json.loads(raw)
        text = "".join(b["text"] for b in reply["content"] if b["type"] == "text")
    except (ValueError, KeyError, TypeError):
        return f"JSON reply is not a message: {raw[:200]!r}"
    if text != REPLY_TEXT:
        return f"message text {text!r} != upstream's {REPLY_TEXT!r}"
    if not isinstance(reply.get("usage"), dict) or reply.get("stop_reason") != "end_turn":
        return "message has no usage or no stop_reason end_turn"
    return None


def check_messages_sse(port: int, path: str, model: str, headers: dict[str, str]) -> str | None:
    status, ctype, raw = _post(port, path, messages_body(model, True), headers)
    if status != 200 or not ctype.startswith("text/event-stream"):
        return f"stream request got {status} ({ctype}): {raw[:200]!r}"
    try:
        events = [json.loads(e) for e in sse_events(raw)]
    except ValueError:
        return "stream has a non-JSON event"
    if not events or events[-1].get("type") != "message_stop":
        return "stream does not end with message_stop"
    text = "".join(
        e["delta"].get("text", "") for e in events if e.get("type") == "content_block_delta"
    )
    if text != REPLY_TEXT:
        return f"streamed text {text!r} != upstream's {REPLY_TEXT!r}"
    delta = next((e for e in events if e.get("type") == "message_delta"), None)
    if delta is None or not delta.get("usage", {}).get("output_tokens"):
        return "stream has no message_delta with usage"
    return None


def check_responses_json(port: int, path: str, model: str, headers: dict[str, str]) -> str | None:
    status, _, raw = _post(port, path, responses_body(model, False), headers)
    if status != 200:
        return f"JSON request got {status}: {raw[:200]!r}"
    try:
        reply = json.loads(raw)
        text = "".join(
            part["text"]
            for item in reply["output"]
            if item["type"] == "message"
            for part in item["content"]
        )
    except (ValueError, KeyError, TypeError):
        return f"JSON reply is not a response object: {raw[:200]!r}"
    if text != REPLY_TEXT:
        return f"response text {text!r} != upstream's {REPLY_TEXT!r}"
    if not isinstance(reply.get("usage"), dict):
        return "response has no usage"
    return None


def check_responses_sse(port: int, path: str, model: str, headers: dict[str, str]) -> str | None:
    status, ctype, raw = _post(port, path, responses_body(model, True), headers)
    if status != 200 or not ctype.startswith("text/event-stream"):
        return f"stream request got {status} ({ctype}): {raw[:200]!r}"
    try:
        events = [json.loads(e) for e in sse_events(raw)]
    except ValueError:
        return "stream has a non-JSON event"
    if not events or events[-1].get("type") != "response.completed":
        return "stream does not end with response.completed"
    text = "".join(e["delta"] for e in events if e.get("type") == "response.output_text.delta")
    if text != REPLY_TEXT:
        return f"streamed text {text!r} != upstream's {REPLY_TEXT!r}"
    if not isinstance(events[-1]["response"].get("usage"), dict):
        return "the completed response has no usage"
    return None
