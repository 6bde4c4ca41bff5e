"""OpenAI `chat.completion.chunk` objects and SSE frames for tests."""

from __future__ import annotations

import json
from typing import Any


def chunk(
    content: str | None = None,
    finish: str | None = None,
    *,
    delta: dict[str, Any] | None = None,
    model: str = "gpt-4o-mini",
    id: str = "c1",
    created: int = 0,
    **extra: Any,
) -> dict[str, Any]:
    """One chunk: `content` as its delta's text (or a whole `delta`), `finish` its reason;
    `extra` adds or replaces top-level fields (`usage=…`, `choices=[]`)."""
    if delta is None:
        delta = {"content": content} if content is not None else {}
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    base = {"id": id, "object": "chat.completion.chunk", "created": created, "model": model}
    return {**base, "choices": [choice], **extra}


def frames(body: str | bytes) -> list[Any]:
    """The `data:` payloads of an SSE body: parsed JSON, or the string "[DONE]"."""
    text = body.decode() if isinstance(body, bytes) else body
    out: list[Any] = []
    for event in text.split("\n\n"):
        data = [line[5:].lstrip() for line in event.split("\n") if line.startswith("data:")]
        if not data:
            continue
        payload = "\n".join(data)
        out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out
