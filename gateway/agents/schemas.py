"""The agent's shape: validated input (create, update) and the records the store returns.

Inputs are strict pydantic models (a REST body or an MCP argument never gets coerced
from `"5"` to `5`); a validation failure becomes one `InvalidRequest` whose `param`
names the field the way a client wrote it (`memory_blocks[1].value`). Text must hold no
NUL character and integers must fit the store's INTEGER columns on every database.
Unknown fields are ignored, as everywhere in the gateway. Records are plain dataclasses;
`to_api()` is their REST shape (the MCP tools build their structured results from the
same records).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway import checks, errors

NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
DEFAULT_SYSTEM = (
    "You are a helpful assistant with a persistent memory. Keep what you learn about the "
    "user and yourself in your memory blocks, and look up earlier parts of the "
    "conversation with conversation_search when they are no longer in view."
)
DEFAULT_BLOCK_LIMIT = 5000
DEFAULT_CONVERSATION = "default"


class MemoryBlock(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    label: str = Field(pattern=NAME_PATTERN)
    value: str = ""
    limit: int = Field(default=DEFAULT_BLOCK_LIMIT, ge=1, le=1_000_000)


def _default_blocks() -> list[MemoryBlock]:
    return [MemoryBlock(label="persona"), MemoryBlock(label="human")]


class AgentCreate(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    name: str = Field(pattern=NAME_PATTERN)
    description: str = Field(default="", max_length=4096)
    model: str | None = Field(default=None, min_length=1, max_length=255)
    system: str = Field(default=DEFAULT_SYSTEM, max_length=200_000)
    memory_blocks: list[MemoryBlock] = Field(default_factory=_default_blocks, max_length=64)
    # None means every built-in tool; [] means none.
    tools: list[str] | None = Field(default=None, max_length=256)
    mcp_servers: list[str] = Field(default_factory=list, max_length=64)
    context_window_limit: int | None = Field(default=None, ge=1, le=checks.INT32_MAX)
    max_tokens: int | None = Field(default=None, ge=1, le=checks.INT32_MAX)
    max_reasoning_tokens: int | None = Field(default=None, ge=0, le=checks.INT32_MAX)
    enable_reasoner: bool = False


class AgentUpdate(BaseModel):
    """A PATCH: only the fields present change; `null` clears a nullable knob."""

    model_config = ConfigDict(extra="ignore", strict=True)

    name: str | None = Field(default=None, pattern=NAME_PATTERN)
    description: str | None = Field(default=None, max_length=4096)
    model: str | None = Field(default=None, min_length=1, max_length=255)
    system: str | None = Field(default=None, max_length=200_000)
    memory_blocks: list[MemoryBlock] | None = Field(default=None, max_length=64)
    tools: list[str] | None = Field(default=None, max_length=256)
    mcp_servers: list[str] | None = Field(default=None, max_length=64)
    context_window_limit: int | None = Field(default=None, ge=1, le=checks.INT32_MAX)
    max_tokens: int | None = Field(default=None, ge=1, le=checks.INT32_MAX)
    max_reasoning_tokens: int | None = Field(default=None, ge=0, le=checks.INT32_MAX)
    enable_reasoner: bool | None = None

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: Any) -> M:
    """Validate `data`, turning the first problem into a 400 that names the field."""
    if not isinstance(data, dict):
        raise errors.InvalidRequest("request body must be a JSON object")
    checks.reject_nul(data)
    try:
        value = model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = field_path(first["loc"])
        raise errors.InvalidRequest(_describe(first, param), param=param or None) from None
    blocks = getattr(value, "memory_blocks", None)
    if blocks is not None:
        check_blocks(blocks)
    return value


def check_blocks(blocks: list[MemoryBlock]) -> None:
    seen: set[str] = set()
    for i, block in enumerate(blocks):
        if block.label in seen:
            raise errors.InvalidRequest(
                f"memory block label '{block.label}' appears twice",
                param=f"memory_blocks[{i}].label",
            )
        seen.add(block.label)
        if len(block.value) > block.limit:
            raise errors.InvalidRequest(
                f"memory block '{block.label}' has {len(block.value)} characters, over its "
                f"limit of {block.limit}",
                param=f"memory_blocks[{i}].value",
            )


def field_path(loc: tuple[int | str, ...]) -> str:
    """('memory_blocks', 1, 'value') → 'memory_blocks[1].value'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(error: Any, param: str) -> str:
    kind = error["type"]
    if kind == "missing":
        return f"'{param}' is required"
    if kind == "extra_forbidden":
        return f"unknown field '{param}'"
    if kind == "string_pattern_mismatch":
        return f"'{param}' must match {NAME_PATTERN} (letters, digits, '_' or '-', 1 to 64)"
    return f"'{param}': {error['msg']}" if param else str(error["msg"])


# -- records ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    label: str
    value: str
    limit: int

    def to_api(self) -> dict[str, Any]:
        return {"label": self.label, "value": self.value, "limit": self.limit}


@dataclass(frozen=True)
class AgentRecord:
    id: str
    name: str
    description: str
    model: str
    system: str
    memory_blocks: tuple[Block, ...]
    tools: tuple[str, ...]
    mcp_servers: tuple[str, ...]
    context_window_limit: int | None
    max_tokens: int | None
    max_reasoning_tokens: int | None
    enable_reasoner: bool
    created_at: float
    updated_at: float

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "agent",
            "name": self.name,
            "description": self.description,
            "model": self.model,
            "system": self.system,
            "memory_blocks": [b.to_api() for b in self.memory_blocks],
            "tools": list(self.tools),
            "mcp_servers": list(self.mcp_servers),
            "context_window_limit": self.context_window_limit,
            "max_tokens": self.max_tokens,
            "max_reasoning_tokens": self.max_reasoning_tokens,
            "enable_reasoner": self.enable_reasoner,
            "created_at": int(self.created_at),
            "updated_at": int(self.updated_at),
        }


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, prompt: int | None, completion: int | None) -> None:
        self.prompt_tokens += prompt or 0
        self.completion_tokens += completion or 0

    def to_api(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass
class StoredMessage:
    """One message of an agent's history, as stored (one row)."""

    id: int
    conversation: str
    turn_id: str
    seq: int
    step: int
    role: str
    content: str | None
    content_parts: list[Any] | None = None
    reasoning_content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    name: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    created_at: float = 0.0
    # Estimated prompt tokens of this message, for trimming the history to the window.
    tokens: int = 0

    def to_api(self) -> dict[str, Any]:
        usage = None
        if self.prompt_tokens is not None or self.completion_tokens is not None:
            usage = Usage(self.prompt_tokens or 0, self.completion_tokens or 0).to_api()
        return {
            "id": self.id,
            "object": "agent.message",
            "conversation": self.conversation,
            "turn_id": self.turn_id,
            "step": self.step,
            "role": self.role,
            "content": self.content_parts if self.content_parts is not None else self.content,
            "reasoning_content": self.reasoning_content,
            "tool_calls": self.tool_calls,
            "tool_call_id": self.tool_call_id,
            "name": self.name,
            "finish_reason": self.finish_reason,
            "usage": usage,
            "created_at": int(self.created_at),
        }

    def to_openai(self, *, with_reasoning: bool = False) -> dict[str, Any]:
        """The message as the model sees it in a chat request."""
        content: Any = self.content_parts if self.content_parts is not None else self.content
        out: dict[str, Any] = {"role": self.role, "content": content}
        if self.role == "assistant":
            if self.tool_calls:
                out["tool_calls"] = self.tool_calls
            if with_reasoning and self.reasoning_content:
                out["reasoning_content"] = self.reasoning_content
        elif self.role == "tool":
            out["tool_call_id"] = self.tool_call_id
        return out


@dataclass
class TurnResult:
    """What one turn produced: its messages (input included), summed usage, step count."""

    turn_id: str
    # The agent with its memory blocks as the turn left them.
    agent: AgentRecord
    conversation: str
    messages: list[StoredMessage]
    usage: Usage
    step_count: int
    finish_reason: str
    created_at: float
    # True when an Idempotency-Key matched an answered turn and nothing ran.
    replayed: bool = False

    @property
    def reply(self) -> str:
        """The assistant's text of the turn: its steps' contents, in order."""
        return join_contents(self.messages)

    def to_api(self) -> dict[str, Any]:
        return {
            "object": "agent.turn",
            "turn_id": self.turn_id,
            "agent_id": self.agent.id,
            "conversation": self.conversation,
            "messages": [m.to_api() for m in self.messages],
            "reply": self.reply,
            "finish_reason": self.finish_reason,
            "usage": {**self.usage.to_api(), "step_count": self.step_count},
        }


def join_contents(messages: list[StoredMessage]) -> str:
    """Assistant texts of a turn joined the way a stream delivers them."""
    texts = [m.content for m in messages if m.role == "assistant" and m.content]
    return "\n\n".join(texts)
