"""The fuzzed routes: one entry per route, each a strategy for whole HTTP requests.

To fuzz a new route, add a `route(...)` to `ROUTES` with a strategy for each part that
carries input: path parameters, query string, headers and body (`obj` for a JSON
object with its known fields). The test runs every entry on SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st
from mcp.shared.inbound import encode_header_value

from tests.fuzz.strategies import (
    anything,
    body,
    header_value,
    obj,
    query,
    segment,
    words,
)

AGENT = "fuzz"  # an agent the runner keeps in existence, so turns and reads find one
MODEL = "openai/gpt-4o-mini"
MODERN = "2026-07-28"
LEGACY = "2025-11-25"
# Replaced by the runner with the current legacy MCP session's id.
SESSION = b"<session>"


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # percent-encoded
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, bytes] = field(default_factory=dict)
    body: bytes | None = None

    def __repr__(self) -> str:
        """Short enough for hypothesis to print (a body may be 70 kB)."""
        parts = [self.method, self.path, repr(self.query), repr(self.headers), repr(self.body)]
        return "Request(" + ", ".join(p[:2000] for p in parts) + ")"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


@dataclass(frozen=True)
class Route:
    name: str
    requests: st.SearchStrategy[Request]


def route(
    method: str,
    template: str,
    *,
    params: dict[str, st.SearchStrategy[str]] | None = None,
    query: st.SearchStrategy[dict[str, str]] | None = None,
    headers: st.SearchStrategy[dict[str, bytes]] | None = None,
    body: st.SearchStrategy[bytes] | None = None,
) -> Route:
    @st.composite
    def build(draw: st.DrawFn) -> Request:
        path = template
        for name, strategy in (params or {}).items():
            path = path.replace("{" + name + "}", draw(strategy))
        return Request(
            method,
            path,
            draw(query) if query is not None else {},
            draw(headers) if headers is not None else {},
            draw(body) if body is not None else None,
        )

    return Route(f"{method} {template}", build())


def headers(*names: str) -> st.SearchStrategy[dict[str, bytes]]:
    return st.dictionaries(st.sampled_from(names), header_value(), max_size=len(names))


# -- pieces of bodies --------------------------------------------------------------------

models = st.one_of(st.sampled_from([MODEL, f"agent/{AGENT}", "openai/gpt-4o", "nope/x"]), words)
roles = st.sampled_from(["user", "user", "assistant", "system", "tool", "developer"])
part = obj(
    {
        "type": st.sampled_from(["text", "image_url", "input_audio"]),
        "text": words,
        "image_url": obj({"url": st.sampled_from(["https://x/y.png", "data:image/png;base64,AA"])}),
    }
)
content = st.one_of(words, st.lists(part, max_size=3))
tool_call = obj(
    {
        "id": words,
        "type": st.just("function"),
        "function": obj({"name": words, "arguments": st.one_of(words, st.just("{}"))}),
    }
)
message = obj(
    {
        "role": roles,
        "content": content,
        "name": words,
        "tool_calls": st.lists(tool_call, max_size=2),
        "tool_call_id": words,
    }
)
user_message = obj({"role": st.just("user"), "content": content})
tool = obj(
    {
        "type": st.just("function"),
        "function": obj({"name": words, "parameters": obj({"type": st.just("object")})}),
    }
)
chat_body = obj(
    {
        "model": models,
        "messages": st.lists(message, min_size=1, max_size=4),
        "stream": st.booleans(),
        "stream_options": obj({"include_usage": st.booleans()}),
        "tools": st.lists(tool, max_size=2),
        "tool_choice": st.one_of(st.sampled_from(["auto", "none", "required"]), anything),
        "response_format": obj({"type": st.sampled_from(["text", "json_object"])}),
        "n": st.just(1),
        "max_tokens": st.integers(1, 4096),
        "max_completion_tokens": st.integers(1, 4096),
        "temperature": st.floats(0, 2),
        "top_p": st.floats(0, 1),
        "user": words,
        "metadata": st.dictionaries(words, words, max_size=2),
    }
)
block = obj(
    {
        "label": st.sampled_from(["persona", "human", "notes"]),
        "value": words,
        "limit": st.integers(100, 10_000),
    }
)
agent_fields: dict[str, st.SearchStrategy[Any]] = {
    "name": st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
    "description": words,
    "model": st.sampled_from([MODEL, "openai/gpt-4o"]),
    "system": words,
    "memory_blocks": st.lists(block, max_size=3),
    "tools": st.lists(
        st.sampled_from(["core_memory_append", "conversation_search", "x__y"]), max_size=3
    ),
    "mcp_servers": st.just([]),
    "context_window_limit": st.integers(1000, 200_000),
    "max_tokens": st.integers(1, 4096),
    "max_reasoning_tokens": st.integers(0, 4096),
    "enable_reasoner": st.booleans(),
}
turn_body = obj(
    {
        "messages": st.lists(user_message, min_size=1, max_size=3),
        "message": words,
        "conversation": st.one_of(st.just("c1"), words),
    }
)
agent_ref = segment(AGENT, "nobody", "agent_" + "0" * 32)
turn_headers = headers("x-conversation-id", "idempotency-key", "x-openwebui-chat-id")

# -- MCP -------------------------------------------------------------------------------------

tool_arguments: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "list_models": obj({}),
    "list_agents": obj({}),
    "chat": obj({"model": models, "prompt": words}),
    "send_message": obj(
        {"agent": st.sampled_from([AGENT, "nobody"]), "message": words, "conversation": words}
    ),
    "create_agent": obj(
        {
            "name": agent_fields["name"],
            "model": st.sampled_from([MODEL, "nope/x"]),
            "system": words,
            "memory": st.dictionaries(words, words, max_size=2),
            "description": words,
        }
    ),
    f"ask_{AGENT}": obj({"message": words, "conversation": words}),
    "no_such_tool": obj({}),
}


@st.composite
def rpc_params(draw: st.DrawFn, method: str) -> Any:
    if method == "tools/call":
        name = draw(st.one_of(st.sampled_from(sorted(tool_arguments)), words))
        arguments = tool_arguments.get(name, obj({"x": anything}))
        return draw(obj({"name": st.just(name), "arguments": arguments}))
    if method == "prompts/get":
        return draw(obj({"name": words, "arguments": st.dictionaries(words, words, max_size=2)}))
    if method == "resources/read":
        return draw(obj({"uri": st.one_of(st.just("file:///etc/passwd"), words)}))
    if method == "initialize":
        return draw(
            obj(
                {
                    "protocolVersion": st.sampled_from([LEGACY, MODERN, "1999-01-01"]),
                    "capabilities": obj({}),
                    "clientInfo": obj({"name": words, "version": words}),
                }
            )
        )
    return draw(st.one_of(obj({"cursor": words}), anything))


@st.composite
def mcp_request(draw: st.DrawFn) -> Request:
    """A JSON-RPC request in either protocol era, its headers matching its body or not."""
    method = draw(
        st.one_of(
            st.sampled_from(
                ["tools/call"] * 4
                + ["prompts/get", "resources/read", "tools/list", "prompts/list"]
                + ["resources/list", "initialize", "ping", "server/discover"]
            ),
            words,
        )
    )
    params = draw(rpc_params(method))
    era = draw(st.sampled_from([MODERN, LEGACY]))
    out: dict[str, bytes] = {"accept": b"application/json, text/event-stream"}
    out["mcp-protocol-version"] = era.encode()
    if era == MODERN:
        if isinstance(params, dict) and draw(st.integers(0, 9)) > 0:
            params["_meta"] = {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "fuzz", "version": "0"},
            }
        out["mcp-method"] = method.encode("utf-8", "surrogatepass")
        name = params.get("name", params.get("uri")) if isinstance(params, dict) else None
        if isinstance(name, str):
            out["mcp-name"] = encode_header_value(name).encode("utf-8", "surrogatepass")
    else:
        out["mcp-session-id"] = SESSION
    message = draw(
        obj(
            {
                "jsonrpc": st.just("2.0"),
                "id": st.one_of(st.integers(0, 10**6), words),
                "method": st.just(method),
                "params": st.just(params),
            }
        )
    )
    raw = draw(body(st.just(message)))
    if draw(st.integers(0, 9)) == 0:
        out.update(draw(headers("mcp-method", "mcp-name", "mcp-protocol-version", "origin")))
    return Request("POST", "/mcp", {}, out, raw)


# -- Anthropic Messages ------------------------------------------------------------------------

block_kinds = st.sampled_from(["text", "image", "tool_use", "tool_result", "thinking", "document"])
content_block = obj(
    {
        "type": block_kinds,
        "text": words,
        "id": words,
        "name": words,
        "input": st.dictionaries(words, words, max_size=2),
        "tool_use_id": words,
        "content": st.one_of(words, st.lists(obj({"type": st.just("text"), "text": words}))),
        "thinking": words,
        "source": obj(
            {
                "type": st.sampled_from(["base64", "url", "text"]),
                "media_type": st.just("image/png"),
                "data": st.just("AA=="),
                "url": st.just("https://x/y.png"),
            }
        ),
        "cache_control": obj({"type": st.just("ephemeral")}),
    }
)
anthropic_message = obj(
    {
        "role": st.sampled_from(["user", "user", "assistant", "system"]),
        "content": st.one_of(words, st.lists(content_block, max_size=3)),
    }
)
messages_body = obj(
    {
        "model": models,
        "max_tokens": st.integers(1, 4096),
        "messages": st.lists(anthropic_message, min_size=1, max_size=3),
        "system": st.one_of(words, st.lists(obj({"type": st.just("text"), "text": words}))),
        "stream": st.booleans(),
        "tools": st.lists(
            obj(
                {
                    "name": words,
                    "description": words,
                    "input_schema": obj({"type": st.just("object")}),
                    "type": st.sampled_from(["custom", "web_search_20250305", "bash_20250124"]),
                }
            ),
            max_size=2,
        ),
        "tool_choice": obj(
            {"type": st.sampled_from(["auto", "any", "tool", "none"]), "name": words}
        ),
        "stop_sequences": st.lists(words, max_size=2),
        "temperature": st.floats(0, 1),
        "top_p": st.floats(0, 1),
        "thinking": obj(
            {
                "type": st.sampled_from(["enabled", "adaptive"]),
                "budget_tokens": st.integers(1, 9999),
            }
        ),
        "metadata": obj({"user_id": words}),
    }
)
anthropic_headers = headers("anthropic-version", "anthropic-beta", "x-api-key")

# -- responses -------------------------------------------------------------------------------

input_part = obj(
    {
        "type": st.sampled_from(["input_text", "output_text", "input_image", "input_file"]),
        "text": words,
        "image_url": st.sampled_from(["data:image/png;base64,AA==", "https://x/y.png"]),
    }
)
input_item = obj(
    {
        "type": st.sampled_from(
            ["message", "function_call", "function_call_output", "reasoning", "item_reference"]
        ),
        "role": roles,
        "content": st.one_of(words, st.lists(input_part, max_size=3)),
        "id": words,
        "call_id": words,
        "name": words,
        "arguments": st.one_of(words, st.just("{}")),
        "output": words,
        "summary": st.lists(obj({"type": st.just("summary_text"), "text": words}), max_size=2),
        "encrypted_content": st.one_of(words, st.just("gw1:aGk=")),
    }
)
responses_body = obj(
    {
        "model": models,
        "input": st.one_of(words, st.lists(input_item, max_size=4)),
        "instructions": words,
        "tools": st.lists(
            obj(
                {
                    "type": st.sampled_from(["function", "web_search", "namespace", "file_search"]),
                    "name": words,
                    "parameters": obj({"type": st.just("object")}),
                }
            ),
            max_size=2,
        ),
        "tool_choice": st.one_of(st.sampled_from(["auto", "none", "required"]), anything),
        "text": obj({"format": obj({"type": st.sampled_from(["json_schema", "json_object"])})}),
        "reasoning": obj({"effort": st.sampled_from(["low", "high"]), "summary": words}),
        "max_output_tokens": st.integers(1, 4096),
        "temperature": st.floats(0, 2),
        "stream": st.booleans(),
        "store": st.booleans(),
        "previous_response_id": st.one_of(words, st.just("resp_" + "0" * 32)),
        "include": st.lists(st.just("reasoning.encrypted_content"), max_size=1),
        "metadata": st.dictionaries(words, words, max_size=2),
    }
)
response_ref = segment("resp_" + "0" * 32, "resp_x")

# -- tenants ---------------------------------------------------------------------------------

KEY = "fuzzkey"  # a virtual key the runner keeps in existence
key_fields: dict[str, st.SearchStrategy[Any]] = {
    "name": st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True),
    "models": st.lists(st.sampled_from(["openai/*", MODEL, "kimi/*"]), max_size=2),
    "agents": st.lists(st.sampled_from([AGENT, "*"]), max_size=2),
    "mcp_tools": st.lists(st.sampled_from(["chat", "ask_*"]), max_size=2),
    "rpm": st.integers(1, 10_000),
    "tpm": st.integers(1, 1_000_000),
    "max_budget_usd": st.floats(0, 1000),
    "budget_period": st.sampled_from(["daily", "monthly", None]),
    "expires_at": st.one_of(
        st.floats(2e9, 3e9), st.sampled_from(["2030-01-01T00:00:00Z", "2030-01-01"])
    ),
}
key_ref = segment(KEY, "nokey", "key-" + "0" * 24)
day = st.one_of(
    st.sampled_from(["2026-01-01", "2026-12-31", "1970-01-01", "9999-12-31", "0", "1e308"]),
    st.floats(allow_nan=True).map(str),
)

# -- the table -----------------------------------------------------------------------------

ROUTES: list[Route] = [
    route("POST", "/v1/chat/completions", headers=turn_headers, body=body(chat_body)),
    route(
        "POST",
        "/v1/messages",
        query=query("beta"),
        headers=anthropic_headers,
        body=body(messages_body),
    ),
    route("POST", "/v1/messages/count_tokens", headers=anthropic_headers, body=body(messages_body)),
    route("POST", "/v1/responses", headers=turn_headers, body=body(responses_body)),
    route("GET", "/v1/responses/{id}", params={"id": response_ref}),
    route("DELETE", "/v1/responses/{id}", params={"id": response_ref}),
    route(
        "GET",
        "/v1/responses/{id}/input_items",
        params={"id": response_ref},
        query=query("limit", "order", "after"),
    ),
    route("GET", "/v1/models", query=query("after")),
    route("GET", "/v1/models/{handle}", params={"handle": segment(MODEL, f"agent/{AGENT}")}),
    route("GET", "/v1/agents", query=query("limit", "after")),
    route("POST", "/v1/agents", body=body(obj(agent_fields))),
    route("GET", "/v1/agents/{ref}", params={"ref": agent_ref}),
    route(
        "PATCH",
        "/v1/agents/{ref}",
        params={"ref": agent_ref},
        body=body(obj(agent_fields)),
    ),
    route("DELETE", "/v1/agents/{ref}", params={"ref": agent_ref}),
    route(
        "GET",
        "/v1/agents/{ref}/messages",
        params={"ref": agent_ref},
        query=query("limit", "before", "after", "conversation"),
        headers=headers("x-conversation-id"),
    ),
    route(
        "POST",
        "/v1/agents/{ref}/messages",
        params={"ref": agent_ref},
        headers=turn_headers,
        body=body(turn_body),
    ),
    route(
        "GET",
        "/v1/agents/{ref}/conversations",
        params={"ref": agent_ref},
        query=query("limit"),
    ),
    route("GET", "/v1/me", headers=headers("authorization", "x-api-key")),
    route("GET", "/v1/keys"),
    route("POST", "/v1/keys", body=body(obj(key_fields))),
    route("GET", "/v1/keys/{ref}", params={"ref": key_ref}),
    route("PATCH", "/v1/keys/{ref}", params={"ref": key_ref}, body=body(obj(key_fields))),
    route("DELETE", "/v1/keys/{ref}", params={"ref": key_ref}),
    route(
        "GET",
        "/v1/usage",
        query=st.one_of(
            query("start", "end", "group_by", "key_id"),
            st.fixed_dictionaries(
                {"start": day, "end": day, "group_by": st.sampled_from(["key", "model", "day"])}
            ),
        ),
    ),
    route("GET", "/ui"),
    route("GET", "/ui/{file}", params={"file": segment("index.html", "app.js", "..%2F..%2Fetc")}),
    route("GET", "/healthz"),
    route("GET", "/readyz"),
    route("GET", "/metrics"),
    Route("POST /mcp", mcp_request()),
]
