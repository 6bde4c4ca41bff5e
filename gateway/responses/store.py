"""Stored responses: one row per response, in the agent store's database."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select

from gateway import errors
from gateway.agents import tables as t
from gateway.agents.store import AgentStore

log = logging.getLogger("gateway")
# How long a reader waits for a response minted this recently to be committed.
_YOUNG_SECONDS = 3.0
_POLL_SECONDS = 0.02


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
    """Stored responses, written behind the reply and read from any replica.

    A save returns at once: the row is committed by a background writer, in groups
    (rows that arrive while one transaction runs go together in the next, so under
    load there is one commit for many responses, and no reply waits for a commit;
    a commit costs several round trips to the server or to SQLite's thread). Until
    then this process serves the response from memory, and another process that is
    asked for an id minted moments ago waits for it to appear (`young_seconds`):
    ids carry their creation time, so a follow-up sent to another replica the moment
    a reply arrives still finds it, while an unknown old id is a 404 at once.
    """

    def __init__(self, store: AgentStore, *, young_seconds: float = _YOUNG_SECONDS) -> None:
        self._store = store
        self._young = young_seconds
        self._pending: dict[str, dict[str, Any]] = {}  # id → row, not yet committed
        self._writer: asyncio.Task[None] | None = None

    def new_id(self) -> str:
        """An id for a response that will be stored: `resp_` + creation ms + random."""
        return f"resp_{int(time.time() * 1000):012x}{uuid.uuid4().hex[:20]}"

    def save(self, record: StoredResponse) -> None:
        """Queue the response for the background writer; readers see it at once."""
        self._pending[record.id] = _row(record)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())

    async def flush(self) -> None:
        """Wait until every queued response is committed (or failed to be)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    async def close(self) -> None:
        await self.flush()

    async def _write(self) -> None:
        while self._pending:
            batch = list(self._pending.values())
            try:
                async with self._store.write() as conn:
                    await conn.execute(insert(t.responses), batch)
            except Exception:
                # One row the database refuses must not lose the others: write them one
                # by one, each in its own transaction, and drop only those refused.
                await self._write_each(batch)
            for row in batch:
                # A row saved again meanwhile (a stream's final state) stays queued.
                if self._pending.get(row["id"]) is row:
                    del self._pending[row["id"]]

    async def _write_each(self, batch: list[dict[str, Any]]) -> None:
        for row in batch:
            try:
                async with self._store.write() as conn:
                    await conn.execute(insert(t.responses), [row])
            except Exception:
                log.exception("could not store response %s", row["id"])

    async def get(
        self, response_id: str, key_id: str | None, *, param: str | None = None
    ) -> StoredResponse:
        """The response, if it exists and the caller's key may see it; else 404."""
        row: Any = self._pending.get(response_id)
        if row is None:
            row = await self._read(response_id)
        if row is None or not _visible(row["key_id"], key_id):
            raise not_found(response_id, param)
        return StoredResponse(
            id=row["id"],
            model=row["model"],
            key_id=row["key_id"],
            conversation=row["conversation"],
            history=list(row["history"]),
            input=list(row["input"]),
            response=dict(row["response"]),
        )

    async def delete(self, response_id: str, key_id: str | None) -> None:
        await self.get(response_id, key_id)
        await self.flush()
        async with self._store.write() as conn:
            await conn.execute(delete(t.responses).where(t.responses.c.id == response_id))

    async def _read(self, response_id: str) -> Any:
        query = select(t.responses).where(t.responses.c.id == response_id)
        created = _created(response_id)
        # Not every string is one of our ids: a "time" in the future is no time at all.
        deadline = created + self._young if created <= time.time() + 1 else 0.0
        while True:
            async with self._store.read() as conn:
                row = (await conn.execute(query)).first()
            if row is not None:
                return row._mapping
            if time.time() >= deadline:
                return None
            # Minted moments ago, maybe by another replica whose writer is still at it.
            await asyncio.sleep(_POLL_SECONDS)


def _row(record: StoredResponse) -> dict[str, Any]:
    return {
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


def _created(response_id: str) -> float:
    """When an id of `new_id` was minted; 0 for any other string."""
    stamp = response_id[5:17]
    if not response_id.startswith("resp_") or len(stamp) != 12:
        return 0.0
    try:
        return int(stamp, 16) / 1000
    except ValueError:
        return 0.0


def not_found(response_id: str, param: str | None = None) -> errors.NotFound:
    return errors.NotFound(
        f"no response with id '{response_id}' is stored", param=param, code="not_found"
    )


def _visible(owner: str | None, caller: str | None) -> bool:
    # A response made with a virtual key belongs to that key; others are shared.
    return owner is None or owner == caller
