"""The store's "no room now" errors, as `StoreBusy` (503 `store_busy`, `Retry-After`).

A saturated store must never look like a bug (a 500): the pool had no connection
free in time, PostgreSQL refused another connection, or SQLite stayed locked past its
busy timeout. Every use of the store goes through `store_errors()`.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator

from sqlalchemy import exc as sa_exc

from gateway import errors

# PostgreSQL's SQLSTATEs for "too many connections" and "starting up / shutting down".
_BUSY_SQLSTATES = frozenset({"53300", "57P03"})


@contextlib.asynccontextmanager
async def store_errors() -> AsyncIterator[None]:
    try:
        yield
    except sa_exc.TimeoutError:
        raise errors.StoreBusy(
            "the agent store is busy: no database connection came free in time; retry shortly"
        ) from None
    except sa_exc.DBAPIError as exc:
        if not is_busy(exc):
            raise
        raise errors.StoreBusy(
            "the agent store is busy: the database refused more work; retry shortly"
        ) from None


def is_busy(exc: sa_exc.DBAPIError) -> bool:
    """Too many connections (PostgreSQL), or the database stayed locked (SQLite)."""
    orig = exc.orig
    if getattr(orig, "pgcode", None) in _BUSY_SQLSTATES:
        return True
    code = getattr(orig, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF == sqlite3.SQLITE_BUSY
