"""Wire formats as a provider uses them: encode the internal request, read replies.

`OpenAIChatWire` serves OpenAI, Kimi and every compatible API: the request is the
internal body with the profile's quirks applied, serialized once, and replies can
also be passed through as they are. `AnthropicWire` translates both ways with the
pure modules of `gateway/wire/`.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import orjson

from gateway import errors
from gateway.providers.base import CallRecord, ProviderSpec
from gateway.providers.profiles import ModelRule, Profile, WireName
from gateway.providers.streams import AnthropicDecoder, Decoder, OpenAIChatDecoder
from gateway.wire import anthropic_upstream, openai_chat
from gateway.wire.internal import Completion, StreamEvent


class WireFormat(Protocol):
    name: WireName
    path: str

    def encode(self, body: dict[str, Any], model: str, spec: ProviderSpec) -> tuple[bytes, bool]:
        """(payload, usage_injected); the body is the internal request (OpenAI chat)."""
        ...

    def read_reply(self, raw: bytes) -> Completion | None:
        """A 200 reply's body as a `Completion`; None when it is empty."""
        ...

    def decoder(self, record: CallRecord) -> Decoder[StreamEvent]: ...


class OpenAIChatWire:
    name: WireName = "openai-chat"
    path = "/chat/completions"

    def encode(self, body: dict[str, Any], model: str, spec: ProviderSpec) -> tuple[bytes, bool]:
        """Adjust a client's request for this upstream; return (payload, usage_injected).

        `usage_injected` is true when we asked for stream usage the client did not ask
        for, so the relay must drop that extra chunk.
        """
        profile = spec.profile
        body["model"] = model
        rule = profile.rule_for(model) if profile.rules else None
        if rule is not None:
            _apply_rule(body, rule, spec.name, model)
        if profile.temperature_range is not None and "temperature" in body:
            body["temperature"] = _clamp_temperature(body, profile)
        if body.get("tool_choice") == "required" and profile.tool_choice_required == "reject":
            raise errors.InvalidRequest(
                f"{spec.name} does not support tool_choice 'required'; use 'auto' or name "
                "a function",
                param="tool_choice",
            )
        _check_response_format(body, model, profile.json_schema_prefixes, spec.name)
        injected = False
        if body.get("stream"):
            options = body.get("stream_options")
            if not isinstance(options, dict):
                options = {}
            if not options.get("include_usage"):
                body["stream_options"] = {**options, "include_usage": True}
                injected = True
        return orjson.dumps(body), injected

    def read_reply(self, raw: bytes) -> Completion | None:
        parsed = parse_reply(raw)
        return None if parsed is None else openai_chat.completion_of(parsed)

    def decoder(self, record: CallRecord) -> Decoder[StreamEvent]:
        return OpenAIChatDecoder(record)


class AnthropicWire:
    name: WireName = "anthropic-messages"
    path = "/messages"

    def encode(self, body: dict[str, Any], model: str, spec: ProviderSpec) -> tuple[bytes, bool]:
        request = anthropic_upstream.to_anthropic_request(body, model)
        return orjson.dumps(request), False

    def read_reply(self, raw: bytes) -> Completion | None:
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(message, dict) or message.get("type") != "message":
            return None
        return anthropic_upstream.completion_of(message, created=int(time.time()))

    def decoder(self, record: CallRecord) -> Decoder[StreamEvent]:
        return AnthropicDecoder(record, created=int(time.time()))


WIRES: dict[WireName, WireFormat] = {
    "openai-chat": OpenAIChatWire(),
    "anthropic-messages": AnthropicWire(),
}


def parse_reply(raw: bytes) -> dict[str, Any] | None:
    """A parsed `chat.completion`, or None when it is empty (no body or no choices)."""
    if not raw.strip():
        return None
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(parsed, dict) or not parsed.get("choices"):
        return None
    return parsed


def _clamp_temperature(body: dict[str, Any], profile: Profile) -> Any:
    value = body["temperature"]
    if not isinstance(value, int | float) or isinstance(value, bool):
        return value
    if profile.temperature_range is None:
        return value
    low, high = profile.temperature_range
    value = min(max(float(value), low), high)
    n = body.get("n")
    floor = profile.min_temperature_multi_choice
    if floor is not None and isinstance(n, int) and n > 1:
        value = max(value, floor)
    return value


def _apply_rule(body: dict[str, Any], rule: ModelRule, provider: str, model: str) -> None:
    for name in rule.fixed_sampling:
        body.pop(name, None)
    n = body.get("n")
    if rule.single_choice and isinstance(n, int) and n > 1:
        raise errors.InvalidRequest(
            f"{provider}/{model} gives one choice per request; 'n' must be 1", param="n"
        )


def _check_response_format(
    body: dict[str, Any], model: str, prefixes: tuple[str, ...] | None, provider: str
) -> None:
    fmt = body.get("response_format")
    if prefixes is None or not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return
    if not model.startswith(prefixes):
        raise errors.InvalidRequest(
            f"{provider}/{model} does not support structured output (json_schema); "
            "use a model that does or response_format {'type': 'json_object'}",
            param="response_format",
        )
