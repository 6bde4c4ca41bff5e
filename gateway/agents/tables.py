"""The agent store's tables, as SQLAlchemy Core; the migrations create exactly these.

`tests/agents/test_units.py` checks that the migrations and this module agree.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

agents = Table(
    "agents",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("description", Text, nullable=False),
    Column("model", String(255), nullable=False),
    Column("system", Text, nullable=False),
    Column("tools", JSON, nullable=False),
    Column("mcp_servers", JSON, nullable=False),
    Column("context_window_limit", Integer, nullable=True),
    Column("max_tokens", Integer, nullable=True),
    Column("max_reasoning_tokens", Integer, nullable=True),
    Column("enable_reasoner", Boolean, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

memory_blocks = Table(
    "memory_blocks",
    metadata,
    Column("agent_id", String(64), ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
    Column("label", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("limit", Integer, nullable=False),
    Column("position", Integer, nullable=False),
)

conversations = Table(
    "conversations",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("agent_id", String(64), ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(255), nullable=False),
    # Messages with a lower seq were trimmed out of the context window (still searchable).
    Column("context_start", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("agent_id", "key", name="uq_conversations_agent_key"),
)

turns = Table(
    "turns",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("agent_id", String(64), ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
    Column(
        "conversation_id",
        BigId,
        ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    # running → done, or running → failed (and failed → running again on a retry).
    Column("status", String(16), nullable=False),
    Column("input_hash", String(64), nullable=False),
    Column("step_count", Integer, nullable=False),
    Column("prompt_tokens", Integer, nullable=False),
    Column("completion_tokens", Integer, nullable=False),
    Column("finish_reason", String(32), nullable=True),
    Column("error", JSON, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
    Index("ix_turns_conversation", "conversation_id", "created_at"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "conversation_id",
        BigId,
        ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("agent_id", String(64), nullable=False),
    Column("turn_id", String(64), ForeignKey("turns.id", ondelete="CASCADE"), nullable=False),
    # Position in the conversation: 0, 1, 2, … with no gaps; unique, so two writers
    # that ever raced would fail loudly instead of interleaving.
    Column("seq", Integer, nullable=False),
    Column("step", Integer, nullable=False),
    Column("role", String(16), nullable=False),
    Column("content", Text, nullable=True),
    Column("content_parts", JSON, nullable=True),
    Column("reasoning_content", Text, nullable=True),
    Column("tool_calls", JSON, nullable=True),
    Column("tool_call_id", String(255), nullable=True),
    Column("name", String(255), nullable=True),
    Column("finish_reason", String(32), nullable=True),
    Column("prompt_tokens", Integer, nullable=True),
    Column("completion_tokens", Integer, nullable=True),
    Column("tokens", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("conversation_id", "seq", name="uq_messages_conversation_seq"),
    Index("ix_messages_turn", "turn_id"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("agent_id", String(64), ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("turn_id", String(64), ForeignKey("turns.id", ondelete="CASCADE"), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
)

# Stored `/v1/responses` replies (`gateway/responses/store.py`). Each row keeps the
# whole context its request saw (`history`: the earlier items; `input`: its own), so
# `previous_response_id` continues with one read, and deleting a response never
# breaks the ones that continued it.
responses = Table(
    "responses",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("model", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    # The virtual key that created it (None: a static key or no auth); others get 404.
    Column("key_id", String(64), nullable=True),
    # An agent turn's conversation, which a follow-up continues.
    Column("conversation", String(255), nullable=True),
    Column("history", JSON, nullable=False),
    Column("input", JSON, nullable=False),
    Column("response", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
)
