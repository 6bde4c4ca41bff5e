"""Serializing the turns of one agent conversation: the one place where dialects differ.

Two layers. In one process, an asyncio lock per (agent, conversation) queues turns
without touching the database, so a waiting turn holds no connection. Across
processes, the turn then takes a lock that lives as long as the turn's connection
or file descriptor, so a crashed process never leaves a conversation locked:

- PostgreSQL: a session-level `pg_advisory_lock` on the connection the turn holds
  (and writes through) for its whole length; a transaction-scoped lock would need one
  transaction spanning the turn, while each step must commit as it happens.
- SQLite: an exclusive byte-range lock (`fcntl.lockf`) at an offset derived from the
  key, in a `<database>.turn-locks` file beside the database; every gateway process
  on that file sees it, and the kernel drops it if the process dies.

Migrations at start-up are serialized too: a transaction-scoped advisory lock on
PostgreSQL, and SQLite's own write lock (`BEGIN IMMEDIATE`) there. And SQLite's single
writer is queued for in-process (`WriteGate`), so busy waits happen only between
processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

# An arbitrary constant: "agent-gateway migrations" as the advisory lock's key.
_MIGRATION_KEY = 0x6167_6D69_6772_6174
# Offsets stay below 2**62 so they fit a signed off_t with room for the 1-byte range.
_OFFSET_MASK = (1 << 62) - 1


def lock_key(agent_id: str, conversation: str) -> int:
    """A signed 64-bit key; a collision would only serialize two unrelated turns."""
    digest = hashlib.blake2b(f"{agent_id}\0{conversation}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def migration_lock(conn: AsyncConnection) -> None:
    """Hold, until `conn`'s transaction ends, the lock that serializes migrations."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_KEY})


class WriteGate:
    """Queues this process's write transactions on SQLite; does nothing on PostgreSQL.

    SQLite takes one writer at a time, and a writer that finds the database locked
    sleeps in SQLite's busy handler (1 ms, then longer, up to 100 ms a try), which
    wrecks throughput when many turns commit at once. Waiting on an asyncio lock first
    means only writers of other processes ever meet the busy handler. PostgreSQL locks
    rows, so its writers go straight through.
    """

    def __init__(self, dialect: str) -> None:
        self._lock = asyncio.Lock() if dialect == "sqlite" else None

    async def __aenter__(self) -> None:
        if self._lock is not None:
            await self._lock.acquire()

    async def __aexit__(self, *exc: object) -> None:
        if self._lock is not None:
            self._lock.release()


@dataclass
class _Local:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class TurnLocks:
    def __init__(self, dialect: str, sqlite_file: Path | None = None) -> None:
        self._dialect = dialect
        self._local: dict[int, _Local] = {}
        self._file = (
            sqlite_file.with_name(sqlite_file.name + ".turn-locks") if sqlite_file else None
        )
        self._fd: int | None = None

    @contextlib.asynccontextmanager
    async def local(self, key: int) -> AsyncIterator[None]:
        """Queue behind this process's other turns of the key; no connection is held."""
        entry = self._local.setdefault(key, _Local())
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._local[key]

    @contextlib.asynccontextmanager
    async def cross_process(self, conn: AsyncConnection, key: int) -> AsyncIterator[None]:
        """Hold the key against other processes; `conn` is the connection the turn holds."""
        if self._dialect == "postgresql":
            async with _advisory_lock(conn, key):
                yield
        else:
            async with self._file_lock(key):
                yield

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @contextlib.asynccontextmanager
    async def _file_lock(self, key: int) -> AsyncIterator[None]:
        if self._file is None:
            yield
            return
        if self._fd is None:
            # One descriptor for the store's life: closing any descriptor of the file
            # would drop every POSIX lock this process holds on it.
            self._fd = os.open(self._file, os.O_RDWR | os.O_CREAT, 0o600)
        fd, offset = self._fd, key & _OFFSET_MASK
        delay = 0.001
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            # Another process runs a turn of this conversation; poll until it is done.
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        try:
            yield
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, offset)


@contextlib.asynccontextmanager
async def _advisory_lock(conn: AsyncConnection, key: int) -> AsyncIterator[None]:
    # Straight on the driver's connection, outside any transaction: one round trip
    # each way instead of BEGIN, SELECT, COMMIT. Nothing else uses `conn` meanwhile.
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    try:
        await driver.execute("SELECT pg_advisory_lock($1)", key)
    except BaseException:
        # Cancelled while waiting, the server may still grant the lock later: closing
        # the connection is the only way to be sure it is released.
        await conn.invalidate()
        raise
    try:
        yield
    finally:
        try:
            await conn.rollback()
            await driver.execute("SELECT pg_advisory_unlock($1)", key)
        except BaseException as exc:
            # Closing the connection releases the lock as well; a pooled connection
            # must never keep it. The turn's own error, if any, is the one to report.
            await conn.invalidate()
            if not isinstance(exc, Exception):
                raise
