"""The agent package's pure parts, and the migrations against the tables they must create."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from gateway import errors
from gateway.agents import context
from gateway.agents.engine import async_url
from gateway.agents.loop import llm_params
from gateway.agents.schemas import StoredMessage
from gateway.agents.store import AgentStore
from gateway.agents.tables import metadata
from gateway.chat.agents import new_input
from gateway.routing.router import LLMConfig
from gateway.settings import ConfigError
from gateway.tenants import tables as _tenant_tables  # noqa: F401  (registers them)


async def test_migrations_create_exactly_the_tables(backend: str) -> None:
    store = AgentStore(backend)
    try:
        await store.open()
        await store.open()  # a second start finds nothing to do

        def diff(conn: Connection) -> list[Any]:
            return list(compare_metadata(MigrationContext.configure(conn), metadata))

        async with store.engine.connect() as conn:
            assert await conn.run_sync(diff) == []
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("sqlite:///data/x.db", "sqlite+aiosqlite:///data/x.db"),
        ("sqlite:////abs/x.db", "sqlite+aiosqlite:////abs/x.db"),
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgres://u@h:5433/db", "postgresql+asyncpg://u@h:5433/db"),
        ("postgresql://u@h/db?sslmode=require", "postgresql+asyncpg://u@h/db?ssl=require"),
    ],
)
def test_plain_urls_get_async_drivers(raw: str, expected: str) -> None:
    assert async_url(raw).render_as_string() == expected


@pytest.mark.parametrize("raw", ["mysql://u@h/db", "sqlite://", "sqlite:///:memory:", "nope"])
def test_unusable_urls_are_configuration_errors(raw: str) -> None:
    with pytest.raises(ConfigError, match="database_url"):
        async_url(raw)


def message(seq: int, role: str, tokens: int, turn: str = "old") -> StoredMessage:
    return StoredMessage(seq + 1, "default", turn, seq, 0, role, "x", tokens=tokens)


def test_trimming_keeps_what_fits_and_cuts_before_a_user_message() -> None:
    history = [
        message(0, "user", 10),
        message(1, "assistant", 10),
        message(2, "tool", 10),
        message(3, "assistant", 10),
        message(4, "user", 10),
        message(5, "assistant", 10),
        message(6, "user", 10, "now"),
    ]
    assert context.trim_start(history, 1000, 6) == 0
    # 40 tokens would allow starting at the tool message; only a user message may start.
    assert context.trim_start(history, 40, 6) == 4
    # The turn in progress is kept even when it alone is too big.
    assert context.trim_start(history, 5, 6) == 6


def test_history_budget_reserves_room_for_the_reply() -> None:
    unknown = context.history_budget(None, None, "", [])
    assert unknown == context.history_budget(context.DEFAULT_WINDOW, None, "", [])
    assert context.history_budget(8000, None, "", []) == 8000 - 1000 - context.MESSAGE_OVERHEAD
    assert context.history_budget(8000, 500, "", []) == 8000 - 500 - context.MESSAGE_OVERHEAD


def test_new_input_is_what_follows_the_last_assistant_message() -> None:
    messages = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "developer", "content": "d"},
        {"role": "user", "content": "c"},
        {"role": "user", "content": "e"},
    ]
    assert [m["content"] for m in new_input(messages)] == ["c", "e"]
    assert [m["content"] for m in new_input(messages[:2])] == ["a"]
    with pytest.raises(errors.InvalidRequest):
        new_input(messages[:3])


def test_llm_knobs_become_request_fields() -> None:
    def config(**knobs: Any) -> LLMConfig:
        base: dict[str, Any] = {
            "max_tokens": None,
            "max_reasoning_tokens": None,
            "enable_reasoner": False,
        }
        return LLMConfig("openai/x", "openai", "x", 1000, **{**base, **knobs})

    assert llm_params(config()) == {}
    assert llm_params(config(max_tokens=100)) == {"max_tokens": 100}
    # Without the reasoner on, a reasoning budget sends nothing about reasoning.
    assert llm_params(config(max_tokens=100, max_reasoning_tokens=50)) == {"max_tokens": 100}
    assert llm_params(config(max_tokens=100, max_reasoning_tokens=50, enable_reasoner=True)) == {
        "max_tokens": 150,
        "thinking": {"type": "enabled", "budget_tokens": 50},
    }
