"""One model call of an agent step, through the provider client the router resolved.

The request is built as a dict and serialized by the client's `prepare`, and sent
with its `complete` or `stream`, so quirks, retries and error mapping are the proxy
path's own. A streamed reply is assembled here from its chunks (content, reasoning,
tool-call fragments, usage wherever the provider puts it), handing each content
delta to the caller as it arrives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway import errors
from gateway.providers.base import CallStats
from gateway.routing.router import Route

DeltaFn = Callable[[str], None]


@dataclass
class ModelReply:
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


async def call_model(
    route: Route,
    body: dict[str, Any],
    stats: CallStats,
    *,
    on_delta: DeltaFn | None = None,
) -> ModelReply:
    """Send `body` (streamed when `on_delta` is given) and return the assembled reply."""
    body["stream"] = on_delta is not None
    payload, injected = route.client.prepare(body, route.model)
    if on_delta is None:
        _, parsed = await route.client.complete(payload, stats)
        return _from_completion(parsed, stats)
    relay = await route.client.stream(payload, stats, drop_usage_chunk=injected)
    assembler = _Assembler(route.provider, on_delta)
    try:
        async for block in relay:
            assembler.feed(block)
    finally:
        await relay.aclose()
    return assembler.reply(stats)


def _from_completion(parsed: dict[str, Any], stats: CallStats) -> ModelReply:
    choice = parsed["choices"][0] if isinstance(parsed["choices"][0], dict) else {}
    message = choice.get("message") or {}
    calls = message.get("tool_calls") or []
    return ModelReply(
        content=message.get("content"),
        reasoning_content=message.get("reasoning_content"),
        tool_calls=[_clean_call(c) for c in calls if isinstance(c, dict)],
        finish_reason=choice.get("finish_reason"),
        prompt_tokens=stats.prompt_tokens,
        completion_tokens=stats.completion_tokens,
    )


def _clean_call(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        arguments = orjson.dumps(arguments).decode() if arguments is not None else ""
    return {
        "id": str(call.get("id") or ""),
        "type": "function",
        "function": {"name": str(function.get("name") or ""), "arguments": arguments},
    }


class _Assembler:
    def __init__(self, provider: str, on_delta: DeltaFn) -> None:
        self._provider = provider
        self._on_delta = on_delta
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._calls: dict[int, dict[str, Any]] = {}
        self._finish: str | None = None
        self._usage: dict[str, Any] | None = None

    def feed(self, block: bytes) -> None:
        for event in block.split(b"\n\n"):
            data = _data_of(event)
            if data is None or data == b"[DONE]":
                continue
            try:
                obj = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                self._chunk(obj)

    def _chunk(self, obj: dict[str, Any]) -> None:
        if "error" in obj:
            error = obj["error"]
            message = error.get("message") if isinstance(error, dict) else error
            raise errors.UpstreamUnavailable(f"{self._provider} failed mid-stream: {message}")
        if isinstance(obj.get("usage"), dict):
            self._usage = obj["usage"]
        choices = obj.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return
        choice = choices[0]
        if isinstance(choice.get("usage"), dict):  # Moonshot puts usage here
            self._usage = choice["usage"]
        if choice.get("finish_reason"):
            self._finish = choice["finish_reason"]
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return
        text = delta.get("content")
        if isinstance(text, str) and text:
            self._content.append(text)
            self._on_delta(text)
        reasoning = delta.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            self._reasoning.append(reasoning)
        for fragment in delta.get("tool_calls") or ():
            if isinstance(fragment, dict):
                self._merge_call(fragment)

    def _merge_call(self, fragment: dict[str, Any]) -> None:
        index = fragment.get("index", len(self._calls))
        call = self._calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
        if fragment.get("id"):
            call["id"] = fragment["id"]
        function = fragment.get("function") or {}
        if function.get("name"):
            call["name"] += function["name"]
        if function.get("arguments"):
            call["arguments"] += function["arguments"]

    def reply(self, stats: CallStats) -> ModelReply:
        stats.add_usage(self._usage)
        calls = [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": c["arguments"]},
            }
            for _, c in sorted(self._calls.items())
        ]
        return ModelReply(
            content="".join(self._content) if self._content else None,
            reasoning_content="".join(self._reasoning) if self._reasoning else None,
            tool_calls=calls,
            finish_reason=self._finish,
            prompt_tokens=stats.prompt_tokens,
            completion_tokens=stats.completion_tokens,
        )


def _data_of(event: bytes) -> bytes | None:
    lines = [line[5:].lstrip() for line in event.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None
