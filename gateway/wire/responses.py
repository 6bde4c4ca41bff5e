"""OpenAI Responses requests → the internal request (an OpenAI chat completions body).

`parse_request` checks a `POST /v1/responses` body and normalizes its input into
items (each with an id, content as a list of parts), the form they are stored and
listed in. `chat_body` then turns the items of the whole conversation (a stored
response's context, then the new input) into chat messages plus the request's
options. Unknown fields are ignored: clients send many (`include`,
`prompt_cache_key`, `client_metadata`, …).

Reasoning survives clients that keep no server state (Codex sends `store: false`
and its whole history every turn): a reasoning item's text goes back to the
provider as the next assistant message's `reasoning_content`, whether the client
returns it as `content` or as the `encrypted_content` we gave it.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass, field
from typing import Any

from gateway import errors

# Hosted tools that clients send by default and work without: dropped, and named
# in the reply's `X-Gateway-Dropped-Tools` header. Any other hosted tool is a 400.
DROPPABLE_TOOLS = frozenset({"web_search", "web_search_preview", "namespace"})
_ROLES = frozenset({"user", "assistant", "system", "developer"})
# Our `encrypted_content` is no secret: the reasoning text, marked and base64-encoded.
_REASONING_MARK = "gw1:"
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "instructions": (str,),
    "tools": (list,),
    "tool_choice": (str, dict),
    "parallel_tool_calls": (bool,),
    "temperature": (int, float),
    "top_p": (int, float),
    "max_output_tokens": (int,),
    "text": (dict,),
    "reasoning": (dict,),
    "metadata": (dict,),
    "user": (str,),
    "stream": (bool,),
    "store": (bool,),
    "previous_response_id": (str,),
    "include": (list,),
}
_WANTED = {str: "string", list: "array", dict: "object", bool: "boolean", int: "integer"}


@dataclass
class ResponsesRequest:
    """A checked `POST /v1/responses` body."""

    model: str
    items: list[dict[str, Any]]  # this request's input, normalized
    body: dict[str, Any]  # the request as sent, for the options and the echo
    tools: list[dict[str, Any]] = field(default_factory=list)  # chat-shaped
    dropped_tools: list[str] = field(default_factory=list)

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True

    @property
    def store(self) -> bool:
        return self.body.get("store") is not False

    @property
    def previous_response_id(self) -> str | None:
        value = self.body.get("previous_response_id")
        return value if isinstance(value, str) and value else None

    @property
    def encrypted_reasoning(self) -> bool:
        """Whether the client asked for reasoning it can send back (`include`)."""
        include = self.body.get("include")
        return isinstance(include, list) and "reasoning.encrypted_content" in include


def new_id(prefix: str) -> str:
    # 128 random bits, as a uuid4 has, at a fraction of its cost.
    return f"{prefix}_{os.urandom(16).hex()}"


def parse_request(body: dict[str, Any]) -> ResponsesRequest:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _invalid("'model' is required and must be a non-empty string", "model")
    for name, kinds in _FIELD_TYPES.items():
        _check_type(body, name, kinds)
    raw_input = body.get("input")
    if isinstance(raw_input, str):
        items = [_message_item("user", raw_input, None)]
    elif isinstance(raw_input, list):
        items = [_normalize_item(item, f"input[{i}]") for i, item in enumerate(raw_input)]
    elif raw_input is None and body.get("previous_response_id"):
        items = []
    else:
        raise _invalid("'input' must be a string or an array of items", "input")
    if not items and not body.get("previous_response_id"):
        raise _invalid("'input' must not be empty", "input")
    max_tokens = body.get("max_output_tokens")
    if isinstance(max_tokens, int) and max_tokens < 1:
        raise _invalid("'max_output_tokens' must be at least 1", "max_output_tokens")
    tools, dropped = _tools(body.get("tools") or [])
    return ResponsesRequest(model.strip(), items, body, tools, dropped)


def chat_body(request: ResponsesRequest, history: list[dict[str, Any]]) -> dict[str, Any]:
    """The chat completions body for `history` (earlier items) followed by the new input."""
    body = request.body
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    messages += items_to_messages([*history, *request.items])
    if not messages:
        raise _invalid("the request has no input to answer", "input")
    chat: dict[str, Any] = {"model": request.model, "messages": messages}
    if request.stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    for ours, theirs in (
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("max_output_tokens", "max_tokens"),
        ("user", "user"),
    ):
        if body.get(ours) is not None:
            chat[theirs] = body[ours]
    if request.tools:
        chat["tools"] = request.tools
        if isinstance(body.get("parallel_tool_calls"), bool):
            chat["parallel_tool_calls"] = body["parallel_tool_calls"]
        choice = _tool_choice(body.get("tool_choice"))
        if choice is not None:
            chat["tool_choice"] = choice
    fmt = _response_format(body.get("text"))
    if fmt is not None:
        chat["response_format"] = fmt
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and isinstance(reasoning.get("effort"), str):
        chat["reasoning_effort"] = reasoning["effort"]
    return chat


# -- input items ---------------------------------------------------------------------


def _normalize_item(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise _invalid(f"{where} must be an object", where)
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if role not in _ROLES:
            raise _invalid(
                f"{where}.role must be one of {', '.join(sorted(_ROLES))}", f"{where}.role"
            )
        return _message_item(role, item.get("content"), _str_or_none(item.get("id")), where)
    if kind == "function_call":
        call_id, name = item.get("call_id"), item.get("name")
        arguments = item.get("arguments", "")
        if not isinstance(call_id, str) or not isinstance(name, str):
            raise _invalid(f"{where} needs 'call_id' and 'name' strings", where)
        if not isinstance(arguments, str):
            raise _invalid(f"{where}.arguments must be a string", where)
        return {
            "id": _str_or_none(item.get("id")) or new_id("fc"),
            "type": "function_call",
            "call_id": call_id,
            "name": name,
            "arguments": arguments,
            "status": "completed",
        }
    if kind == "function_call_output":
        call_id, output = item.get("call_id"), item.get("output")
        if not isinstance(call_id, str):
            raise _invalid(f"{where}.call_id must be a string", f"{where}.call_id")
        if not isinstance(output, str | list):
            raise _invalid(f"{where}.output must be a string or an array", f"{where}.output")
        return {
            "id": _str_or_none(item.get("id")) or new_id("fco"),
            "type": "function_call_output",
            "call_id": call_id,
            "output": output,
            "status": "completed",
        }
    if kind == "reasoning":
        out: dict[str, Any] = {
            "id": _str_or_none(item.get("id")) or new_id("rs"),
            "type": "reasoning",
            "summary": item.get("summary") if isinstance(item.get("summary"), list) else [],
        }
        if isinstance(item.get("content"), list):
            out["content"] = item["content"]
        if isinstance(item.get("encrypted_content"), str):
            out["encrypted_content"] = item["encrypted_content"]
        return out
    raise _invalid(
        f"{where}: input items of type '{kind}' are not supported; use message, "
        "function_call, function_call_output or reasoning items",
        f"{where}.type",
    )


def _message_item(
    role: str, content: Any, item_id: str | None, where: str = "input"
) -> dict[str, Any]:
    if isinstance(content, str):
        kind = "output_text" if role == "assistant" else "input_text"
        parts: list[dict[str, Any]] = [{"type": kind, "text": content}]
    elif isinstance(content, list):
        parts = [_part(p, f"{where}.content[{i}]") for i, p in enumerate(content)]
    else:
        raise _invalid(f"{where}.content must be a string or an array of parts", f"{where}.content")
    return {
        "id": item_id or new_id("msg"),
        "type": "message",
        "role": role,
        "content": parts,
        "status": "completed",
    }


def _part(part: Any, where: str) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise _invalid(f"{where} must be an object", where)
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text", "refusal"):
        text = part.get("refusal") if kind == "refusal" else part.get("text")
        if not isinstance(text, str):
            raise _invalid(f"{where}.text must be a string", f"{where}.text")
        return {**part, "type": "output_text" if kind == "output_text" else kind, "text": text}
    if kind == "input_image":
        if not isinstance(part.get("image_url"), str):
            raise _invalid(
                f"{where}: only images given by 'image_url' (a URL or data URL) are supported",
                f"{where}.image_url",
            )
        return part
    raise _invalid(
        f"{where}: content parts of type '{kind}' are not supported; use input_text, "
        "input_image or output_text",
        f"{where}.type",
    )


def items_to_messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Normalized items → chat messages.

    Consecutive function calls join the assistant message before them (or a new one);
    a reasoning item's text rides on the next assistant message as `reasoning_content`.
    """
    messages: list[dict[str, Any]] = []
    reasoning: list[str] = []
    # The assistant message that function calls may still join.
    open_assistant: dict[str, Any] | None = None

    def assistant() -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": None}
        if reasoning:
            message["reasoning_content"] = "".join(reasoning)
            reasoning.clear()
        messages.append(message)
        return message

    for item in items:
        kind = item["type"]
        if kind == "reasoning":
            text = reasoning_text(item)
            if text:
                reasoning.append(text)
            open_assistant = None
        elif kind == "function_call":
            if open_assistant is None:
                open_assistant = assistant()
            open_assistant.setdefault("tool_calls", []).append(
                {
                    "id": item["call_id"],
                    "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]},
                }
            )
        elif kind == "function_call_output":
            open_assistant = None
            output = item["output"]
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": item["call_id"],
                    "content": output if isinstance(output, str) else _parts_text(output),
                }
            )
        else:
            role = item["role"]
            if role == "assistant":
                open_assistant = assistant()
                open_assistant["content"] = _parts_text(item["content"])
            else:
                open_assistant = None
                role = "system" if role == "developer" else role
                messages.append({"role": role, "content": _chat_content(role, item["content"])})
    return messages


def reasoning_text(item: dict[str, Any]) -> str:
    """A reasoning item's text: its content, else our `encrypted_content`, else its summary."""
    content = item.get("content")
    if isinstance(content, list):
        text = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if text:
            return text
    encrypted = item.get("encrypted_content")
    if isinstance(encrypted, str) and encrypted.startswith(_REASONING_MARK):
        try:
            return base64.b64decode(encrypted[len(_REASONING_MARK) :]).decode()
        except (binascii.Error, UnicodeDecodeError):
            return ""
    summary = item.get("summary")
    if isinstance(summary, list):
        return "".join(p.get("text", "") for p in summary if isinstance(p, dict))
    return ""


def encrypt_reasoning(text: str) -> str:
    return _REASONING_MARK + base64.b64encode(text.encode()).decode()


def _chat_content(role: str, parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if role != "user" or all(p["type"] != "input_image" for p in parts):
        return _parts_text(parts)
    out: list[dict[str, Any]] = []
    for part in parts:
        if part["type"] == "input_image":
            image: dict[str, Any] = {"url": part["image_url"]}
            if part.get("detail") in ("low", "high", "auto"):
                image["detail"] = part["detail"]
            out.append({"type": "image_url", "image_url": image})
        else:
            out.append({"type": "text", "text": part.get("text", "")})
    return out


def _parts_text(parts: list[Any]) -> str:
    return "".join(
        str(p.get("text", ""))
        for p in parts
        if isinstance(p, dict) and p.get("type") != "input_image"
    )


# -- options ---------------------------------------------------------------------------


def _tools(tools: list[Any]) -> tuple[list[dict[str, Any]], list[str]]:
    out: list[dict[str, Any]] = []
    dropped: list[str] = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise _invalid(f"{where} must be an object", where)
        kind = tool.get("type")
        if kind in DROPPABLE_TOOLS:
            if kind not in dropped:
                dropped.append(str(kind))
            continue
        if kind != "function":
            raise _invalid(
                f"{where}: tools of type '{kind}' are hosted by OpenAI and cannot run here; "
                "only 'function' tools are supported",
                f"{where}.type",
                code="unsupported_tool",
            )
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise _invalid(f"{where}.name must be a non-empty string", f"{where}.name")
        function: dict[str, Any] = {"name": name}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        if isinstance(tool.get("parameters"), dict):
            function["parameters"] = tool["parameters"]
        if isinstance(tool.get("strict"), bool):
            function["strict"] = tool["strict"]
        out.append({"type": "function", "function": function})
    return out, dropped


def _tool_choice(choice: Any) -> Any:
    if choice is None or isinstance(choice, str):
        return choice
    if choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    if choice.get("type") == "allowed_tools":
        mode = choice.get("mode")
        return mode if mode in ("auto", "required") else "auto"
    raise _invalid(
        f"tool_choice of type '{choice.get('type')}' is not supported; use 'auto', 'none', "
        "'required' or a function",
        "tool_choice",
    )


def _response_format(text: Any) -> dict[str, Any] | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict):
        return None
    kind = fmt.get("type")
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        if not isinstance(schema.get("schema"), dict):
            raise _invalid("text.format.schema must be an object", "text.format.schema")
        schema.setdefault("name", "response")
        return {"type": "json_schema", "json_schema": schema}
    return None


def _check_type(body: dict[str, Any], name: str, kinds: tuple[type, ...]) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) and bool not in kinds:
        ok = False
    else:
        ok = isinstance(value, kinds)
    if not ok:
        wanted = " or ".join(_WANTED.get(k, "number") for k in kinds if k is not float)
        if float in kinds:
            wanted = "number"
        raise _invalid(f"'{name}' must be {wanted}", name)


def _invalid(message: str, param: str, code: str | None = None) -> errors.InvalidRequest:
    return errors.InvalidRequest(message, param=param, code=code)


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
