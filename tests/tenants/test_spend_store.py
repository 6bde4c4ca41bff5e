"""The spend ledger against a real store: one row the database refuses is dropped with
a log line and never holds back the others; a failed flush never fails a report."""

from __future__ import annotations

import logging
import time

import pytest

from gateway.agents.store import AgentStore
from gateway.tenants import tables as _tenant_tables  # noqa: F401  (registers them)
from gateway.tenants.spend import SpendLedger, Tally, day_of

LONG = "kimi/" + "x" * 300  # wider than the usage.model column


async def test_a_refused_row_is_dropped_and_the_rest_written(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = AgentStore(backend)
    await store.open()
    ledger = SpendLedger(store)
    try:
        ledger.add("key-a", "openai/gpt-4o-mini", Tally(1, 10, 5, 0, 0.5))
        ledger.add("key-b", LONG, Tally(1, 1, 1, 0, 0.25))
        ledger.add("key-c", "openai/gpt-4o-mini", Tally(2, 20, 10, 0, 1.0))
        with caplog.at_level(logging.ERROR, logger="gateway.tenants"):
            await ledger.flush()
        day = day_of(time.time())
        rows = {r["key_id"]: r for r in await ledger.report(day, day, "key")}
        assert (rows["key-a"]["requests"], rows["key-c"]["requests"]) == (1, 2)
        if store.dialect == "postgresql":
            # PostgreSQL enforces the column's width: that row alone is dropped, and
            # nothing stays pending to fail every later flush.
            assert "key-b" not in rows
            assert "spend row refused" in caplog.text
            assert ledger.pending_spend("key-b", None) == 0.0
        else:  # SQLite does not enforce VARCHAR widths
            assert rows["key-b"]["requests"] == 1
        ledger.add("key-a", "openai/gpt-4o-mini", Tally(1, 10, 5, 0, 0.5))
        await ledger.flush()
        rows = {r["key_id"]: r for r in await ledger.report(day, day, "key")}
        assert rows["key-a"]["requests"] == 2
    finally:
        await store.close()


async def test_a_report_shows_what_is_stored_when_the_flush_fails(backend: str) -> None:
    store = AgentStore(backend)
    await store.open()
    ledger = SpendLedger(store)
    try:
        ledger.add("key-a", "openai/gpt-4o-mini", Tally(1, 10, 5, 0, 0.5))
        await ledger.flush()

        async def broken(items: object) -> None:
            raise ConnectionError("database went away")

        ledger._write = broken  # type: ignore[method-assign]
        ledger.add("key-a", "openai/gpt-4o-mini", Tally(1, 10, 5, 0, 0.5))
        day = day_of(time.time())
        rows = await ledger.report(day, day, "key")
        assert [(r["key_id"], r["requests"]) for r in rows] == [("key-a", 1)]
        # The unwritten spend is kept for the next flush.
        assert ledger.pending_spend("key-a", None) == 0.5
    finally:
        await store.close()
