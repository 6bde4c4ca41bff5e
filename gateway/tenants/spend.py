"""Spend: usage and cost aggregated in memory, written to the store in batches.

Finished requests are folded into one counter per (key, model, UTC day); every
`flush_seconds` the counters go to the `usage` table as one transaction of upserts
that add to the stored rows. The table grows by one row per key, model and day, and
the request path never waits on the database. A crash loses at most the requests of
the last `flush_seconds` (plus the recorder's 0.1 s batch); a clean shutdown loses
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite

from gateway.agents.store import AgentStore
from gateway.tenants import tables as t

log = logging.getLogger("gateway.tenants")

GROUPS = ("key", "model", "day")


@dataclass
class Tally:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0

    def add(self, other: Tally) -> None:
        self.requests += other.requests
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cached_tokens += other.cached_tokens
        self.cost_usd += other.cost_usd


Slot = tuple[str, str, str]  # key id, model handle, day


def day_of(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")


class SpendLedger:
    def __init__(self, store: AgentStore, flush_seconds: float = 2.0) -> None:
        self.store = store
        self.flush_seconds = flush_seconds
        self._pending: dict[Slot, Tally] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def add(self, key_id: str, model: str, tally: Tally, now: float | None = None) -> None:
        slot = (key_id, model, day_of(now if now is not None else time.time()))
        found = self._pending.get(slot)
        if found is None:
            self._pending[slot] = tally
        else:
            found.add(tally)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="spend-flush")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            try:
                await self.flush()
            except Exception:
                # The batch stays pending and goes with the next one.
                log.exception("writing spend to the store failed; retrying")

    async def flush(self) -> None:
        async with self._lock:
            batch, self._pending = self._pending, {}
            if not batch:
                return
            try:
                await self._write(sorted(batch.items()))  # one lock order for all
            except sa_exc.DBAPIError as exc:
                if not _bad_data(exc):
                    self._keep(batch)
                    raise
                # One row the database refuses must not hold back every key's spend:
                # write them one by one, and drop (with a log line) only those refused.
                await self._write_each(batch)
            except BaseException:
                self._keep(batch)
                raise

    def _keep(self, batch: dict[Slot, Tally]) -> None:
        """Put an unwritten batch back, to go with the next flush."""
        for slot, tally in batch.items():
            self._pending.setdefault(slot, Tally()).add(tally)

    async def _write_each(self, batch: dict[Slot, Tally]) -> None:
        items = sorted(batch.items())
        for i, (slot, tally) in enumerate(items):
            try:
                await self._write([(slot, tally)])
            except sa_exc.DBAPIError as exc:
                if not _bad_data(exc):
                    self._keep(dict(items[i:]))
                    raise
                log.error(
                    "spend row refused by the store and dropped: key %r, model %r, day %s, "
                    "%d requests, $%.6f: %s",
                    *slot,
                    tally.requests,
                    tally.cost_usd,
                    exc.orig,
                )
            except BaseException:
                self._keep(dict(items[i:]))
                raise

    async def _write(self, items: list[tuple[Slot, Tally]]) -> None:
        rows = [
            {
                "key_id": key,
                "model": model,
                "day": day,
                "requests": v.requests,
                "prompt_tokens": v.prompt_tokens,
                "completion_tokens": v.completion_tokens,
                "cached_tokens": v.cached_tokens,
                "cost_usd": v.cost_usd,
            }
            for (key, model, day), v in items
        ]
        dialect = postgresql if self.store.dialect == "postgresql" else sqlite
        stmt = dialect.insert(t.usage)
        u = t.usage
        stmt = stmt.on_conflict_do_update(
            index_elements=[u.c.key_id, u.c.model, u.c.day],
            set_={
                name: getattr(u.c, name) + getattr(stmt.excluded, name)
                for name in (
                    "requests",
                    "prompt_tokens",
                    "completion_tokens",
                    "cached_tokens",
                    "cost_usd",
                )
            },
        )
        async with self.store.write() as conn:
            await conn.execute(stmt, rows)

    def pending_spend(self, key_id: str, first_day: str | None) -> float:
        return sum(
            v.cost_usd
            for (key, _, day), v in self._pending.items()
            if key == key_id and (first_day is None or day >= first_day)
        )

    async def period_spend(self, key_id: str, first_day: str | None) -> float:
        """What a key spent from `first_day` (None: ever), as stored plus not yet written."""
        u = t.usage
        query = select(func.coalesce(func.sum(u.c.cost_usd), 0.0)).where(u.c.key_id == key_id)
        if first_day is not None:
            query = query.where(u.c.day >= first_day)
        async with self.store.read() as conn:
            stored = (await conn.execute(query)).scalar_one()
        return float(stored) + self.pending_spend(key_id, first_day)

    async def spend_by_key_and_day(self, key_ids: list[str]) -> dict[str, dict[str, float]]:
        """key id -> day -> cost, stored plus not yet written (for budgets left)."""
        if not key_ids:
            return {}
        u = t.usage
        query = (
            select(u.c.key_id, u.c.day, func.sum(u.c.cost_usd))
            .where(u.c.key_id.in_(key_ids))
            .group_by(u.c.key_id, u.c.day)
        )
        async with self.store.read() as conn:
            rows = (await conn.execute(query)).all()
        out: dict[str, dict[str, float]] = {}
        for key, day, cost in rows:
            out.setdefault(key, {})[day] = float(cost or 0.0)
        for (key, _, day), tally in self._pending.items():
            if key in out or key in key_ids:
                days = out.setdefault(key, {})
                days[day] = days.get(day, 0.0) + tally.cost_usd
        return out

    async def report(
        self, start: str, end: str, group_by: str, key_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Requests, tokens and cost per key, model or day, for days `start`..`end`."""
        try:
            await self.flush()
        except Exception:
            # The report shows what is stored; the unwritten spend stays pending.
            log.exception("writing spend to the store failed; reporting what is stored")
        u = t.usage
        column = {"key": u.c.key_id, "model": u.c.model, "day": u.c.day}[group_by]
        query = (
            select(
                column.label("group"),
                func.sum(u.c.requests),
                func.sum(u.c.prompt_tokens),
                func.sum(u.c.completion_tokens),
                func.sum(u.c.cached_tokens),
                func.sum(u.c.cost_usd),
            )
            .where(u.c.day >= start, u.c.day <= end)
            .group_by(column)
            .order_by(column)
        )
        if key_id is not None:
            query = query.where(u.c.key_id == key_id)
        async with self.store.read() as conn:
            rows = (await conn.execute(query)).all()
        return [_row(group_by, r) for r in rows]


def _bad_data(exc: sa_exc.DBAPIError) -> bool:
    """Whether the database refused the rows themselves (a value too long, a constraint),
    rather than failing to run the statement (connection lost, busy)."""
    if isinstance(exc, (sa_exc.DataError, sa_exc.IntegrityError)):
        return True
    # asyncpg's errors reach SQLAlchemy as plain DBAPIError: use the SQLSTATE class
    # (22 data exception, 23 integrity constraint violation).
    code = getattr(exc.orig, "pgcode", None) or getattr(exc.orig, "sqlstate", None)
    return isinstance(code, str) and code[:2] in ("22", "23")


def _row(group_by: str, r: Iterable[Any]) -> dict[str, Any]:
    group, requests, prompt, completion, cached, cost = tuple(r)
    prompt, completion = int(prompt or 0), int(completion or 0)
    return {
        group_by if group_by != "key" else "key_id": group,
        "requests": int(requests or 0),
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cached_tokens": int(cached or 0),
        "total_tokens": prompt + completion,
        "cost_usd": round(float(cost or 0.0), 9),
    }
