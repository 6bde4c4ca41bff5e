"""OpenAI chat completions ⇄ the internal representation.

Decoding (a provider speaks OpenAI chat, a client does not, or an agent reads the
reply): `completion_of` turns a `chat.completion` into a `Completion`, and
`ChunkDecoder` turns `chat.completion.chunk` objects into `StreamEvent`s: content,
`reasoning_content` (Kimi's thinking models, DeepSeek) as `ReasoningDelta`, tool calls
arriving in fragments as `ToolCallDelta`s, and usage wherever the provider puts it
(OpenAI: a trailing chunk without choices; Moonshot: inside `choices[0]` of the chunk
carrying `finish_reason`).

Encoding (a client speaks OpenAI chat, the reply was not OpenAI bytes already: an
agent turn, an Anthropic provider): `reply_of` builds the `chat.completion` object,
`ChunkEncoder` the chunks of a stream. No `null` is sent where OpenAI's schema types
a string (`system_fingerprint` is left out), and a chunk carries `usage` only when
the client asked for it.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway import errors
from gateway.wire.internal import (
    Completion,
    Finish,
    FinishReason,
    ReasoningDelta,
    Start,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def finish_reason(value: Any) -> FinishReason:
    """An upstream's finish reason, mapped into OpenAI's four (unknown ones are "stop")."""
    return _FINISH.get(value, "stop") if isinstance(value, str) else "stop"


def _int(value: Any) -> int:
    return value if type(value) is int else 0


def usage_of(value: Any) -> Usage | None:
    """An OpenAI usage object (with Moonshot's top-level `cached_tokens`) as `Usage`."""
    if type(value) is not dict:
        return None
    # Read on every pass-through reply: the details only when they are there.
    usage = Usage(_int(value.get("prompt_tokens")), _int(value.get("completion_tokens")))
    if "prompt_tokens_details" in value or "cached_tokens" in value or len(value) > 3:
        prompt_details = value.get("prompt_tokens_details")
        completion_details = value.get("completion_tokens_details")
        cached = _int(value.get("cached_tokens"))
        if isinstance(prompt_details, dict):
            cached = _int(prompt_details.get("cached_tokens")) or cached
        usage.cached_tokens = cached
        if isinstance(completion_details, dict):
            usage.reasoning_tokens = _int(completion_details.get("reasoning_tokens"))
    return usage


def usage_dict(usage: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.cached_tokens:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    if usage.reasoning_tokens:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return out


# -- decoding ----------------------------------------------------------------------


def completion_of(reply: dict[str, Any]) -> Completion:
    """A parsed `chat.completion` (with at least one choice) as a `Completion`."""
    choices = reply.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    choice = choice if isinstance(choice, dict) else {}
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    content = message.get("content")
    reasoning = message.get("reasoning_content")
    calls = message.get("tool_calls")
    return Completion(
        id=str(reply.get("id") or ""),
        model=str(reply.get("model") or ""),
        created=_int(reply.get("created")),
        content=content if isinstance(content, str) else None,
        reasoning=reasoning if isinstance(reasoning, str) and reasoning else None,
        tool_calls=[_tool_call(c) for c in calls if isinstance(c, dict)]
        if isinstance(calls, list)
        else [],
        finish_reason=finish_reason(choice.get("finish_reason")),
        usage=usage_of(reply.get("usage")) or usage_of(choice.get("usage")) or Usage(),
    )


def _tool_call(call: dict[str, Any]) -> ToolCall:
    function = call.get("function")
    function = function if isinstance(function, dict) else {}
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        arguments = orjson.dumps(arguments).decode() if arguments is not None else ""
    return ToolCall(str(call.get("id") or ""), str(function.get("name") or ""), arguments)


class ChunkDecoder:
    """One stream's chunks in, internal events out.

    `Finish` is held back until `end()` (the `[DONE]` event or the stream's end), so
    the usage OpenAI sends after the finish chunk can still go with it.
    """

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.started = False
        self._finish: FinishReason | None = None
        self._usage: Usage | None = None
        self._ended = False

    @property
    def finished(self) -> bool:
        return self._finish is not None

    def feed(self, chunk: dict[str, Any]) -> list[StreamEvent]:
        """Events for one parsed chunk; an `error` object raises the mapped error."""
        if "error" in chunk:
            raise stream_error(self.provider, chunk)
        out: list[StreamEvent] = []
        if not self.started:
            self.started = True
            out.append(
                Start(
                    str(chunk.get("id") or ""),
                    str(chunk.get("model") or ""),
                    _int(chunk.get("created")),
                )
            )
        usage = usage_of(chunk.get("usage"))
        choices = chunk.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            choice = choices[0]
            usage = usage_of(choice.get("usage")) or usage
            delta = choice.get("delta")
            if isinstance(delta, dict):
                _delta_events(delta, out)
            reason = choice.get("finish_reason")
            if reason:
                self._finish = finish_reason(reason)
        if usage is not None:
            self._usage = usage
        return out

    def end(self) -> list[StreamEvent]:
        """The final events once the stream is over: `Finish`, if a finish reason came."""
        if self._ended or self._finish is None:
            return []
        self._ended = True
        return [Finish(self._finish, self._usage)]


def _delta_events(delta: dict[str, Any], out: list[StreamEvent]) -> None:
    reasoning = delta.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        out.append(ReasoningDelta(reasoning))
    text = delta.get("content")
    if isinstance(text, str) and text:
        out.append(TextDelta(text))
    calls = delta.get("tool_calls")
    if isinstance(calls, list):
        for position, call in enumerate(calls):
            if not isinstance(call, dict):
                continue
            function = call.get("function")
            function = function if isinstance(function, dict) else {}
            index = call.get("index")
            name = function.get("name")
            arguments = function.get("arguments")
            out.append(
                ToolCallDelta(
                    index=index if isinstance(index, int) else position,
                    id=call.get("id") if isinstance(call.get("id"), str) else None,
                    name=name if isinstance(name, str) and name else None,
                    arguments=arguments if isinstance(arguments, str) else "",
                )
            )


def stream_error(provider: str, chunk: dict[str, Any]) -> errors.GatewayError:
    """The gateway error for an `{"error": …}` object inside a stream."""
    error = chunk.get("error")
    message = error.get("message") if isinstance(error, dict) else error
    code = error.get("code") if isinstance(error, dict) else None
    failure = errors.UpstreamUnavailable(f"{provider} failed mid-stream: {message}")
    if isinstance(code, str) and code:
        failure.code = code  # type: ignore[misc]
    return failure


# -- encoding ----------------------------------------------------------------------


def reply_of(completion: Completion) -> dict[str, Any]:
    """The `chat.completion` object for `completion`."""
    message: dict[str, Any] = {"role": "assistant", "content": completion.content}
    if completion.reasoning:
        message["reasoning_content"] = completion.reasoning
    if completion.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in completion.tool_calls
        ]
    return {
        "id": completion.id,
        "object": "chat.completion",
        "created": completion.created,
        "model": completion.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": completion.finish_reason,
            }
        ],
        "usage": usage_dict(completion.usage),
    }


class ChunkEncoder:
    """Internal events out as `chat.completion.chunk` SSE events (bytes, ready to send).

    The role chunk goes out with `Start`; with `include_usage` a usage chunk (no
    choices) follows the finish chunk, as OpenAI sends it. `done()` is the terminator.
    """

    def __init__(self, *, include_usage: bool) -> None:
        self.include_usage = include_usage
        self.model = ""
        self.id = ""
        self.created = 0

    def encode(self, event: StreamEvent) -> bytes:
        if isinstance(event, TextDelta):
            return self._choice({"content": event.text})
        if isinstance(event, ReasoningDelta):
            return self._choice({"reasoning_content": event.text})
        if isinstance(event, ToolCallDelta):
            call: dict[str, Any] = {"index": event.index}
            function: dict[str, Any] = {"arguments": event.arguments}
            if event.id is not None:
                call["id"] = event.id
                call["type"] = "function"
            if event.name is not None:
                function["name"] = event.name
            call["function"] = function
            return self._choice({"tool_calls": [call]})
        if isinstance(event, Start):
            self.id, self.model, self.created = event.id, event.model, event.created
            return self._choice({"role": "assistant", "content": ""})
        if isinstance(event, Finish):
            out = self._choice({}, event.reason)
            if self.include_usage:
                usage = usage_dict(event.usage or Usage())
                out += self._frame({"choices": [], "usage": usage})
            return out
        return b""  # UsageEvent: the usage goes out with Finish

    def done(self) -> bytes:
        return b"data: [DONE]\n\n"

    def _choice(self, delta: dict[str, Any], reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
        return self._frame({"choices": [choice]})

    def _frame(self, extra: dict[str, Any]) -> bytes:
        chunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            **extra,
        }
        return b"data: " + orjson.dumps(chunk) + b"\n\n"
