"""Stored responses: one row per response, in the agent store's database."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select

from gateway import errors
from gateway.agents import tables as t
from gateway.agents.store import AgentStore


@dataclass
class StoredResponse:
    id: str
    model: str
    key_id: str | None
    conversation: str | None
    history: list[dict[str, Any]]  # the items before this request's input
    input: list[dict[str, Any]]  # this request's input items
    response: dict[str, Any]  # the response object as last sent

    @property
    def context(self) -> list[dict[str, Any]]:
        """What a follow-up continues: everything this response saw, then its output."""
        return [*self.history, *self.input, *self.response.get("output", [])]


class ResponseStore:
    """Uses the agent store's engine, pool and SQLite write queue."""

    def __init__(self, store: AgentStore) -> None:
        self._store = store

    async def save(self, record: StoredResponse) -> None:
        row = {
            "id": record.id,
            "model": record.model,
            "status": str(record.response.get("status", "completed")),
            "key_id": record.key_id,
            "conversation": record.conversation,
            "history": record.history,
            "input": record.input,
            "response": record.response,
            "created_at": time.time(),
        }
        async with self._store.write() as conn:
            await conn.execute(insert(t.responses).values(row))

    async def get(
        self, response_id: str, key_id: str | None, *, param: str | None = None
    ) -> StoredResponse:
        """The response, if it exists and the caller's key may see it; else 404."""
        async with self._store.read() as conn:
            row = (
                await conn.execute(select(t.responses).where(t.responses.c.id == response_id))
            ).first()
        if row is None or not _visible(row.key_id, key_id):
            raise not_found(response_id, param)
        return StoredResponse(
            id=row.id,
            model=row.model,
            key_id=row.key_id,
            conversation=row.conversation,
            history=list(row.history),
            input=list(row.input),
            response=dict(row.response),
        )

    async def delete(self, response_id: str, key_id: str | None) -> None:
        await self.get(response_id, key_id)
        async with self._store.write() as conn:
            await conn.execute(delete(t.responses).where(t.responses.c.id == response_id))


def not_found(response_id: str, param: str | None = None) -> errors.NotFound:
    return errors.NotFound(
        f"no response with id '{response_id}' is stored", param=param, code="not_found"
    )


def _visible(owner: str | None, caller: str | None) -> bool:
    # A response made with a virtual key belongs to that key; others are shared.
    return owner is None or owner == caller
