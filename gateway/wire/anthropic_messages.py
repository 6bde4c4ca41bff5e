"""Anthropic's Messages API, client side: requests in.

`to_internal` turns a Messages request (what the Anthropic SDK and Claude Code send to
`/v1/messages`) into the internal request, an OpenAI chat body, and `estimate_tokens`
counts one without a provider. Replies and errors go back through
`anthropic_messages_reply.py`, streams through `anthropic_messages_sse.py`.

What a translation cannot carry is dropped, not refused: clients send many fields no
other provider knows (`cache_control`, `context_management`, `output_config`, beta
tools), and a request that works on Claude should work here. The few choices that
depend on the model that will answer come in as `Traits`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson

from gateway import errors

# Extended-thinking budgets as OpenAI's reasoning efforts: below 4k tokens is a light
# think, 16k and more a long one (Claude Code's "think hard" asks for 31,999).
_EFFORTS = ((4096, "low"), (16384, "medium"))
# An image is ~width·height/750 tokens and Anthropic scales images to ~1.15 megapixels;
# without decoding it, the largest count is the honest estimate.
IMAGE_TOKENS = 1600
_BILLING_HEADER = "x-anthropic-billing-header:"


@dataclass(frozen=True)
class Traits:
    """What the translation needs to know about the model that will answer."""

    # Whether the upstream accepts OpenAI's `tool_choice: "required"` (Kimi does not).
    tool_choice_required: bool = True
    # Whether the upstream takes OpenAI's `reasoning_effort`; else `thinking` is dropped.
    reasoning_effort: bool = False
    # Whether `thinking` blocks of the history go back as `reasoning_content` (Kimi's
    # thinking models want them on tool-calling turns); else they are left out.
    reasoning_history: bool = True


# -- requests -----------------------------------------------------------------------


def check_request(body: dict[str, Any]) -> None:
    """Refuse what no translation could make sense of, naming the field (400)."""
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise errors.InvalidRequest("model: a non-empty string is required", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise errors.InvalidRequest("messages: a non-empty array is required", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise errors.InvalidRequest(f"messages.{i}: must be an object", param=f"messages.{i}")
        if message.get("role") not in ("user", "assistant", "system"):
            raise errors.InvalidRequest(
                f"messages.{i}.role: must be 'user' or 'assistant'", param=f"messages.{i}.role"
            )
        content = message.get("content")
        if not isinstance(content, str | list):
            raise errors.InvalidRequest(
                f"messages.{i}.content: must be a string or an array of content blocks",
                param=f"messages.{i}.content",
            )
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (not _is_int(max_tokens) or max_tokens < 1):
        raise errors.InvalidRequest("max_tokens: must be a positive integer", param="max_tokens")
    for name, kind in (("stream", bool), ("system", str | list), ("tools", list)):
        value = body.get(name)
        if value is not None and not isinstance(value, kind):
            raise errors.InvalidRequest(f"{name}: wrong type", param=name)
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
            raise errors.InvalidRequest(f"{name}: must be a number", param=name)


def to_internal(body: dict[str, Any], traits: Traits = Traits()) -> dict[str, Any]:
    """The internal (OpenAI chat) request for a checked Messages request."""
    system = [_text_of(body.get("system"))]
    messages: list[dict[str, Any]] = []
    for message in body["messages"]:
        role = message["role"]
        if role == "system":
            # Claude Code puts its environment in a system message after the first user
            # turn. Folded into the system prompt it stays an instruction on every
            # provider (chat templates that allow one leading system message included);
            # as a user message the model would answer it instead of the prompt.
            system.append(_text_of(message["content"]))
        elif role == "user":
            messages += _user_messages(message["content"])
        else:
            messages.append(_assistant_message(message["content"], traits.reasoning_history))
    prompt = "\n\n".join(part for part in system if part)
    if prompt:
        messages.insert(0, {"role": "system", "content": prompt})
    out: dict[str, Any] = {"model": body["model"], "messages": messages}
    if _is_int(body.get("max_tokens")):
        out["max_completion_tokens"] = body["max_tokens"]
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            out[name] = body[name]
    stops = body.get("stop_sequences")
    if isinstance(stops, list) and stops:
        out["stop"] = [s for s in stops if isinstance(s, str)]
    _tools(body, out, traits)
    effort = _reasoning_effort(body.get("thinking")) if traits.reasoning_effort else None
    if effort is not None:
        out["reasoning_effort"] = effort
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        out["user"] = metadata["user_id"]
    if body.get("stream") is True:
        # Every Messages stream ends with usage; ask for it whatever the client said.
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _user_messages(content: Any) -> list[dict[str, Any]]:
    """One user turn as OpenAI messages: tool results first, as `tool` messages (they
    must follow the assistant's tool calls), then the rest as one user message."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "tool_result":
            message, images = _tool_message(block)
            out.append(message)
            # A tool message carries text only; the images it returned follow as user input.
            parts += images
        elif kind == "text" and isinstance(block.get("text"), str):
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image":
            image = _image_part(block)
            if image is not None:
                parts.append(image)
        elif kind == "document":
            text = _document_text(block)
            if text:
                parts.append({"type": "text", "text": text})
        # Other blocks (search results, server tool results, …) have no OpenAI form.
    if parts:
        out.append({"role": "user", "content": _compact(parts)})
    return out


def _compact(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """Text-only content as one string: every OpenAI-compatible server takes that,
    while some reject content arrays for models without vision."""
    if all(part["type"] == "text" for part in parts):
        return "\n\n".join(part["text"] for part in parts)
    return parts


def _tool_message(block: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    content = block.get("content")
    images: list[dict[str, Any]] = []
    if isinstance(content, list):
        texts = []
        for item in content:
            kind = item.get("type") if isinstance(item, dict) else None
            if kind == "text" and isinstance(item.get("text"), str):
                texts.append(item["text"])
            elif kind == "image":
                image = _image_part(item)
                if image is not None:
                    images.append(image)
        text = "\n\n".join(texts)
    else:
        text = content if isinstance(content, str) else ""
    if block.get("is_error") is True:
        # OpenAI has no error flag on tool results; the model still has to know.
        text = f"Error: {text}" if text else "Error"
    call_id = block.get("tool_use_id")
    message = {"role": "tool", "tool_call_id": str(call_id or ""), "content": text}
    return message, images


def _image_part(block: dict[str, Any]) -> dict[str, Any] | None:
    source = block.get("source")
    if not isinstance(source, dict):
        return None
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type') or 'image/png'};base64,{source.get('data') or ''}"
    elif source.get("type") == "url" and isinstance(source.get("url"), str):
        url = source["url"]
    else:
        return None  # a Files API reference: only Anthropic can read it
    return {"type": "image_url", "image_url": {"url": url}}


def _document_text(block: dict[str, Any]) -> str:
    """A plain-text document's text; PDFs and files only Anthropic can read."""
    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "text":
        data = source.get("data")
        return data if isinstance(data, str) else ""
    return ""


def _assistant_message(content: Any, with_reasoning: bool) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            thinking.append(block["thinking"])
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            function = {"name": str(block.get("name") or ""), "arguments": arguments}
            calls.append(
                {"id": str(block.get("id") or ""), "type": "function", "function": function}
            )
        # redacted_thinking is Anthropic's encrypted reasoning: nobody else can read it.
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if thinking and with_reasoning:
        message["reasoning_content"] = "".join(thinking)
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    return message


def _text_of(content: Any) -> str:
    """A system prompt or system message: a string, or text blocks (cache hints dropped).

    Claude Code's first system block is billing metadata for Anthropic
    (`x-anthropic-billing-header: cc_version=…`), not an instruction: another model
    would only read it, and a new Claude Code version would change the prompt's prefix.
    """
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts = [
        b["text"]
        for b in content
        if isinstance(b, dict)
        and isinstance(b.get("text"), str)
        and not b["text"].startswith(_BILLING_HEADER)
    ]
    return "\n\n".join(texts)


def _tools(body: dict[str, Any], out: dict[str, Any], traits: Traits) -> None:
    tools = [_tool(tool) for tool in body.get("tools") or ()]
    functions = [tool for tool in tools if tool is not None]
    if not functions:
        return  # OpenAI refuses a tool_choice without tools
    out["tools"] = functions
    choice = body.get("tool_choice")
    if not isinstance(choice, dict):
        return
    kind = choice.get("type")
    if kind == "any":
        # Kimi refuses "required". "auto" with the same tools is the nearest request it
        # takes: the model may still answer in text, which a client of `any` handles
        # like any reply without a tool call; a 400 would stop the client instead.
        out["tool_choice"] = "required" if traits.tool_choice_required else "auto"
    elif kind == "tool" and isinstance(choice.get("name"), str):
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    elif kind in ("auto", "none"):
        out["tool_choice"] = kind
    if choice.get("disable_parallel_tool_use") is True and kind != "none":
        out["parallel_tool_calls"] = False


def _tool(tool: Any) -> dict[str, Any] | None:
    """An OpenAI function tool, or None for a tool only Anthropic can run.

    Only the custom (client) tool, with no type or type "custom", translates: every
    other type (web_search_*, bash_*, text_editor_*, tool_search_*, mcp_toolset, …) is
    run or defined by Anthropic itself, and no other provider can honour it.

    `defer_loading` (Anthropic's tool search loads such tools on demand) is ignored:
    without that server-side search, the model can use a tool only if it sees it.
    """
    if not isinstance(tool, dict):
        return None
    kind = tool.get("type")
    if kind is not None and kind != "custom":
        return None
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        return None
    schema = tool.get("input_schema")
    function: dict[str, Any] = {
        "name": name,
        "parameters": schema if isinstance(schema, dict) else {"type": "object"},
    }
    if isinstance(tool.get("description"), str):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def dropped_tools(body: dict[str, Any]) -> list[str]:
    """Names (or types) of the request's tools the translation leaves out."""
    out = []
    for tool in body.get("tools") or ():
        if isinstance(tool, dict) and _tool(tool) is None:
            out.append(str(tool.get("name") or tool.get("type") or "?"))
    return out


def _reasoning_effort(thinking: Any) -> str | None:
    """`thinking` as an effort: a budget picks one; "adaptive" leaves the model's default."""
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int):
        return "medium"
    return next((effort for limit, effort in _EFFORTS if budget < limit), "high")


# -- token counts -------------------------------------------------------------------


def estimate_tokens(internal: dict[str, Any]) -> int:
    """A provider-independent estimate of an internal request's prompt tokens.

    One token per 4 characters of text (system, messages, tool-call arguments, tool
    definitions as JSON) — the usual rule of thumb for English and code with BPE
    tokenizers — plus 4 per message for the chat template's framing and `IMAGE_TOKENS`
    per image.
    """
    chars = 0
    tokens = 0
    for message in internal.get("messages") or ():
        tokens += 4
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                if part.get("type") == "image_url":
                    tokens += IMAGE_TOKENS
                else:
                    chars += len(str(part.get("text") or ""))
        chars += len(str(message.get("reasoning_content") or ""))
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            chars += len(str(function.get("name") or "")) + len(
                str(function.get("arguments") or "")
            )
    tools = internal.get("tools")
    if tools:
        chars += len(orjson.dumps(tools))
    return tokens + math.ceil(chars / 4)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
