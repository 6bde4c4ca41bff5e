"""Requests to an Anthropic upstream and its whole replies: internal ⇄ Messages API.

The provider side of the Anthropic wire format (the `/v1/messages` facade, the
client side, lives elsewhere). Requests go from the internal form (an OpenAI chat
body) to a Messages request (`to_anthropic_request`); replies come back as the
internal `Completion` (`completion_of`); streams are `anthropic_upstream_stream`'s.

What OpenAI can ask for and Anthropic cannot do is refused with a 400 naming the
field (`n > 1`, `response_format` json_object/json_schema, non-function tools);
OpenAI-only knobs that change nothing essential (seed, penalties, logprobs, …) are
dropped.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from gateway import errors
from gateway.wire.internal import Completion, FinishReason, ToolCall, Usage

# Anthropic requires max_tokens; OpenAI clients usually leave it out.
DEFAULT_MAX_TOKENS = 4096
# OpenAI's `reasoning_effort` as an extended-thinking budget ("minimal" means none).
EFFORT_BUDGETS = {"low": 1024, "medium": 4096, "high": 16384}

_FINISH_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# An error event inside a stream has a type but no status; the status Anthropic
# documents for each type lets `errors.from_upstream` map both paths alike.
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}
_DATA_URL = re.compile(r"data:([^;,]+);base64,(.*)", re.DOTALL)
# Anthropic accepts only these characters in tool ids; other providers' ids may not fit.
_BAD_ID_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_TOOL_CHOICES = {"auto": {"type": "auto"}, "none": {"type": "none"}, "required": {"type": "any"}}


# -- requests --------------------------------------------------------------------


def to_anthropic_request(body: dict[str, Any], model: str) -> dict[str, Any]:
    """The Messages request for an OpenAI chat body; InvalidRequest for what it cannot say."""
    _reject_unsupported(body)
    system, messages = _messages(body.get("messages") or [])
    out: dict[str, Any] = {"model": model, "messages": messages}
    thinking = _thinking(body)
    budget = 0
    if thinking is not None:
        out["thinking"] = thinking
        budget = _int(thinking.get("budget_tokens")) if thinking.get("type") == "enabled" else 0
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    # Thinking tokens count against max_tokens; the default leaves room for an answer.
    out["max_tokens"] = limit or DEFAULT_MAX_TOKENS + budget
    if system:
        out["system"] = system
    _sampling(body, out)
    _tools(body, out)
    if isinstance(body.get("user"), str):
        out["metadata"] = {"user_id": body["user"]}
    if body.get("stream"):
        out["stream"] = True
    return out


def _reject_unsupported(body: dict[str, Any]) -> None:
    n = body.get("n")
    if isinstance(n, int) and n > 1:
        raise errors.InvalidRequest(
            "Anthropic models return one choice per request; n must be 1", param="n"
        )
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        raise errors.InvalidRequest(
            f"Anthropic models do not support response_format '{fmt['type']}'; describe the "
            "JSON in the prompt or have the model call a tool with that schema",
            param="response_format",
        )


def _messages(messages: list[Any]) -> tuple[str, list[dict[str, Any]]]:
    """(system text, turns): system messages hoisted, same-role turns merged."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise errors.InvalidRequest("each message must be an object", param=where)
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(_plain_text(message.get("content"), f"{where}.content"))
            continue
        if role == "user":
            blocks = _content_blocks(message.get("content"), f"{where}.content")
        elif role == "assistant":
            blocks = _assistant_blocks(message, where)
        elif role == "tool":
            role, blocks = "user", [_tool_result(message, where)]
        else:
            raise errors.InvalidRequest(
                f"{where}.role '{role}' is not supported for Anthropic models; "
                "use tool_calls and 'tool' messages",
                param=f"{where}.role",
            )
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        # Anthropic wants a user turn's tool results before any text in it.
        if turn["role"] == "user":
            turn["content"].sort(key=lambda block: block["type"] != "tool_result")
    return "\n\n".join(s for s in system if s), turns


def _plain_text(content: Any, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    blocks = _content_blocks(content, where)
    if any(b["type"] != "text" for b in blocks):
        raise errors.InvalidRequest("only text is allowed here", param=where)
    return "\n\n".join(b["text"] for b in blocks)


def _content_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    """OpenAI content (a string or parts) as Anthropic blocks; empty text is left out."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise errors.InvalidRequest("content must be a string or an array of parts", param=where)
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "refusal"):
            text = part.get(kind)
            if isinstance(text, str) and text:
                blocks.append({"type": "text", "text": text})
        elif kind == "image_url":
            blocks.append(_image_block(part.get("image_url"), f"{where}[{j}].image_url"))
        else:
            raise errors.InvalidRequest(
                f"content part type '{kind}' is not supported for Anthropic models",
                param=f"{where}[{j}].type",
            )
    return blocks


def _image_block(image: Any, where: str) -> dict[str, Any]:
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise errors.InvalidRequest("image_url.url must be a string", param=where)
    match = _DATA_URL.fullmatch(url)
    if match:
        source = {"type": "base64", "media_type": match[1], "data": match[2]}
    elif url.startswith(("https://", "http://")):
        source = {"type": "url", "url": url}
    else:
        raise errors.InvalidRequest(
            "image_url.url must be an http(s) URL or a base64 data: URL", param=where
        )
    return {"type": "image", "source": source}


def _assistant_blocks(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    # `reasoning_content` is not sent back: Anthropic accepts earlier thinking only
    # with its signature, which an OpenAI client never had.
    blocks = _content_blocks(message.get("content"), f"{where}.content")
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise errors.InvalidRequest("tool_calls must be an array", param=f"{where}.tool_calls")
    for j, call in enumerate(calls):
        blocks.append(_tool_use(call, f"{where}.tool_calls[{j}]"))
    return blocks


def _tool_use(call: Any, where: str) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise errors.InvalidRequest("a tool call needs function.name", param=where)
    if not isinstance(call.get("id"), str) or not call["id"]:
        raise errors.InvalidRequest("a tool call needs an id", param=f"{where}.id")
    arguments = function.get("arguments")
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) and arguments.strip() else {}
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise errors.InvalidRequest(
            "function.arguments must be a JSON object", param=f"{where}.function.arguments"
        )
    return {
        "type": "tool_use",
        "id": tool_id(call["id"]),
        "name": function["name"],
        "input": parsed,
    }


def _tool_result(message: dict[str, Any], where: str) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise errors.InvalidRequest(
            "a tool message needs tool_call_id", param=f"{where}.tool_call_id"
        )
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_id(call_id)}
    content = message.get("content")
    if isinstance(content, str):
        if content:
            block["content"] = content
    else:
        blocks = _content_blocks(content, f"{where}.content")
        if blocks:
            block["content"] = blocks
    return block


def tool_id(value: str) -> str:
    """A tool call id Anthropic accepts; the same input always gives the same id."""
    return _BAD_ID_CHARS.sub("_", value)


def _thinking(body: dict[str, Any]) -> dict[str, Any] | None:
    # Anthropic's own `thinking` (an OpenAI SDK sends it via extra_body) wins.
    if isinstance(body.get("thinking"), dict):
        return dict(body["thinking"])
    budget = EFFORT_BUDGETS.get(str(body.get("reasoning_effort")))
    return {"type": "enabled", "budget_tokens": budget} if budget else None


def _sampling(body: dict[str, Any], out: dict[str, Any]) -> None:
    temperature = body.get("temperature")
    if isinstance(temperature, int | float) and not isinstance(temperature, bool):
        # OpenAI's range is [0, 2], Anthropic's [0, 1]; 400s for a value users
        # reasonably send would be worse than the clamp.
        out["temperature"] = min(max(float(temperature), 0.0), 1.0)
    for name in ("top_p", "top_k"):
        if isinstance(body.get(name), int | float) and not isinstance(body[name], bool):
            out[name] = body[name]
    stop = body.get("stop")
    if isinstance(stop, str) and stop:
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        out["stop_sequences"] = [s for s in stop if isinstance(s, str)]


def _tools(body: dict[str, Any], out: dict[str, Any]) -> None:
    tools = body.get("tools")
    if not tools:
        return  # OpenAI also ignores tool_choice without tools
    out["tools"] = [_tool(tool, f"tools[{i}]") for i, tool in enumerate(tools)]
    choice = _tool_choice(body.get("tool_choice"))
    if body.get("parallel_tool_calls") is False:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    if choice is not None:
        out["tool_choice"] = choice


def _tool(tool: Any, where: str) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict) or tool.get("type") != "function":
        raise errors.InvalidRequest(
            "only function tools are supported for Anthropic models", param=f"{where}.type"
        )
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise errors.InvalidRequest("a function tool needs a name", param=f"{where}.function.name")
    schema = function.get("parameters") or {"type": "object", "properties": {}}
    out: dict[str, Any] = {"name": name, "input_schema": schema}
    if isinstance(function.get("description"), str):
        out["description"] = function["description"]
    return out


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if isinstance(choice, str) and choice in _TOOL_CHOICES:
        return dict(_TOOL_CHOICES[choice])
    function = choice.get("function") if isinstance(choice, dict) else None
    if isinstance(function, dict) and isinstance(function.get("name"), str):
        return {"type": "tool", "name": function["name"]}
    raise errors.InvalidRequest(
        "tool_choice must be 'auto', 'none', 'required' or name a function",
        param="tool_choice",
    )


# -- replies ---------------------------------------------------------------------


def finish_reason(stop_reason: Any) -> FinishReason | None:
    if stop_reason is None:
        return None
    return _FINISH_REASONS.get(str(stop_reason), "stop")


def usage_of(usage: Any) -> Usage:
    """Anthropic counts cached prompt tokens apart from `input_tokens`; we count them in."""
    u = usage if isinstance(usage, dict) else {}
    cached = _int(u.get("cache_read_input_tokens"))
    prompt = _int(u.get("input_tokens")) + cached + _int(u.get("cache_creation_input_tokens"))
    return Usage(
        prompt_tokens=prompt, completion_tokens=_int(u.get("output_tokens")), cached_tokens=cached
    )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def completion_of(message: dict[str, Any], created: int) -> Completion:
    """A Messages response as a `Completion`."""
    text: list[str] = []
    reasoning: list[str] = []
    calls: list[ToolCall] = []
    for block in message.get("content") or ():
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            text.append(str(block.get("text") or ""))
        elif kind == "thinking":
            reasoning.append(str(block.get("thinking") or ""))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append(
                ToolCall(str(block.get("id") or ""), str(block.get("name") or ""), arguments)
            )
    return Completion(
        id=str(message.get("id") or ""),
        model=str(message.get("model") or ""),
        created=created,
        content="".join(text) if text or not calls else None,
        reasoning="".join(reasoning) if reasoning else None,
        tool_calls=calls,
        finish_reason=finish_reason(message.get("stop_reason")) or "stop",
        usage=usage_of(message.get("usage")),
    )


def stream_error(provider: str, event: dict[str, Any]) -> errors.GatewayError:
    """The gateway error for an in-stream `error` event."""
    error = event.get("error")
    kind = error.get("type") if isinstance(error, dict) else None
    status = _ERROR_STATUS.get(str(kind), 500)
    return errors.from_upstream(provider, status, orjson.dumps(event))
