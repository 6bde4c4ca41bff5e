"""Serializing the turns of one agent conversation: the one place where dialects differ.

Two layers, neither of which keeps a pooled connection for a turn's length (a turn
waits on models for seconds or minutes; the pool serves everyone else meanwhile).
In one process, an asyncio lock per (agent, conversation) queues turns. Across
processes, the turn then holds a lock that dies with its process, so a crashed
process never leaves a conversation locked:

- PostgreSQL: a session-level advisory lock, on one connection per process
  (`AdvisoryLocks`) that holds the locks of all the process's running turns. It only
  ever tries (`pg_try_advisory_lock`) and polls, so one connection serves every
  waiter. If that connection drops, the server frees its locks: the turns that held
  them fail at their next write (`Lease.valid`), and a retry resumes them. TCP
  keepalives make the server notice a vanished host within about a minute.
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
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from gateway import errors
from gateway.agents.busy import store_errors

log = logging.getLogger("gateway.agents")

# An arbitrary constant: "agent-gateway migrations" as the advisory lock's key.
_MIGRATION_KEY = 0x6167_6D69_6772_6174
# Offsets stay below 2**62 so they fit a signed off_t with room for the 1-byte range.
_OFFSET_MASK = (1 << 62) - 1
_TRY_LOCK = "SELECT pg_try_advisory_lock($1)"
_UNLOCK = "SELECT pg_advisory_unlock($1)"
# The server drops a vanished client's session (and its locks) after about a minute
# of silence instead of the kernel's two hours.
_KEEPALIVE = {
    "tcp_keepalives_idle": "30",
    "tcp_keepalives_interval": "10",
    "tcp_keepalives_count": "3",
}


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


class TurnSlots:
    """At most `pool_size - 1` turn transactions at once in this process.

    A burst of turns (hundreds arriving together) then never takes the last pooled
    connection: reads and REST writes always find one. And the turns waiting here are
    not runnable tasks, so they do not slow the event loop for everyone else either.
    A turn that waits `timeout` seconds without a slot gets `StoreBusy`.
    """

    def __init__(self, pool_size: int, timeout: float) -> None:
        self._slots = asyncio.Semaphore(max(1, pool_size - 1))
        self._timeout = timeout

    async def __aenter__(self) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise errors.StoreBusy(
                "the agent store is busy: too many agent turns are writing; retry shortly"
            ) from None

    async def __aexit__(self, *exc: object) -> None:
        self._slots.release()


@dataclass
class _Local:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


@dataclass
class Lease:
    """A held cross-process lock; `valid()` is false once the lock may be someone else's."""

    locks: AdvisoryLocks | None = None
    generation: int = 0
    # Whether another turn of the conversation held the lock first: then what the
    # turn read before it queued (the agent's settings) may be out of date.
    waited: bool = False

    def valid(self) -> bool:
        return self.locks is None or self.locks.holds(self.generation)


class TurnLocks:
    def __init__(self, url: URL, sqlite_file: Path | None = None) -> None:
        self._dialect = url.get_backend_name()
        self._local: dict[int, _Local] = {}
        self._file = (
            sqlite_file.with_name(sqlite_file.name + ".turn-locks") if sqlite_file else None
        )
        self._fd: int | None = None
        self._advisory = AdvisoryLocks(url) if self._dialect == "postgresql" else None

    @contextlib.asynccontextmanager
    async def hold(self, key: int) -> AsyncIterator[Lease]:
        """Hold `key` against this process's other turns, then against other processes."""
        queued = key in self._local
        async with self.local(key):
            if self._advisory is not None:
                lease = await self._advisory.acquire(key)
                lease.waited |= queued
                try:
                    yield lease
                finally:
                    await self._advisory.release(key, lease)
            else:
                async with self._file_lock(key) as polled:
                    yield Lease(waited=queued or polled)

    @contextlib.asynccontextmanager
    async def local(self, key: int) -> AsyncIterator[None]:
        """Queue behind this process's other turns of the key."""
        entry = self._local.setdefault(key, _Local())
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._local[key]

    async def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._advisory is not None:
            await self._advisory.close()

    @contextlib.asynccontextmanager
    async def _file_lock(self, key: int) -> AsyncIterator[bool]:
        """Yields whether another process held the lock first."""
        if self._file is None:
            yield False
            return
        if self._fd is None:
            # One descriptor for the store's life: closing any descriptor of the file
            # would drop every POSIX lock this process holds on it.
            self._fd = os.open(self._file, os.O_RDWR | os.O_CREAT, 0o600)
        fd, offset = self._fd, key & _OFFSET_MASK
        delay, polled = 0.001, False
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            # Another process runs a turn of this conversation; poll until it is done.
            await asyncio.sleep(delay)
            delay, polled = min(delay * 2, 0.05), True
        try:
            yield polled
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, offset)


class AdvisoryLocks:
    """This process's turn locks on PostgreSQL, all on one connection of their own.

    Session-level advisory locks count per session: the in-process lock (`TurnLocks.
    local`) makes sure one turn at a time per key asks, so the count stays at one.
    Each statement is shielded from cancellation, and a lock granted to a caller that
    was cancelled meanwhile is given back, so a lock is never kept by nobody.
    """

    def __init__(self, url: URL) -> None:
        self._engine = create_async_engine(
            url, poolclass=NullPool, connect_args={"server_settings": _KEEPALIVE}
        )
        self._conn: AsyncConnection | None = None
        self._driver: Any = None
        # Bumped at each new connection: leases of an earlier one hold nothing.
        self._generation = 0
        # asyncpg runs one statement at a time per connection.
        self._io = asyncio.Lock()
        self._undo: set[asyncio.Task[Any]] = set()

    def holds(self, generation: int) -> bool:
        """Whether locks taken on connection `generation` are still held."""
        return (
            generation == self._generation
            and self._driver is not None
            and not self._driver.is_closed()
        )

    async def acquire(self, key: int) -> Lease:
        delay, polled = 0.002, False
        while True:
            granted, generation = await self._shielded(_TRY_LOCK, key)
            if granted:
                return Lease(self, generation, waited=polled)
            # Another process runs a turn of this conversation; poll until it is done.
            await asyncio.sleep(delay)
            delay, polled = min(delay * 2, 0.05), True

    async def release(self, key: int, lease: Lease) -> None:
        if not lease.valid():
            return  # its connection is gone, and the lock with it
        try:
            await self._shielded(_UNLOCK, key, lease.generation)
        except Exception:
            # The connection failed: the server drops the lock with the session.
            log.warning("could not release a turn lock; dropping the lock connection")
            await self._reset()

    async def close(self) -> None:
        if self._undo:
            await asyncio.wait(set(self._undo), timeout=5)
        await self._reset()
        await self._engine.dispose()

    async def _shielded(
        self, statement: str, key: int, generation: int | None = None
    ) -> tuple[bool, int]:
        task = asyncio.ensure_future(self._run(statement, key, generation))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if statement == _TRY_LOCK:
                task.add_done_callback(lambda done: self._give_back(done, key))
            raise

    def _give_back(self, task: asyncio.Task[tuple[bool, int]], key: int) -> None:
        if task.cancelled() or task.exception() is not None or not task.result()[0]:
            return
        undo = asyncio.ensure_future(self._shielded(_UNLOCK, key, task.result()[1]))
        self._undo.add(undo)
        undo.add_done_callback(self._undo.discard)

    async def _run(self, statement: str, key: int, generation: int | None) -> tuple[bool, int]:
        async with self._io:
            if generation is not None and not self.holds(generation):
                return False, generation  # an unlock for a connection that is gone
            driver = await self._connect()
            try:
                result = await driver.fetchval(statement, key)
            except Exception:
                await self._reset()
                raise
            return bool(result), self._generation

    async def _connect(self) -> Any:
        if self._driver is not None and not self._driver.is_closed():
            return self._driver
        await self._reset()
        async with store_errors():
            conn = await self._engine.connect()
        raw = await conn.get_raw_connection()
        self._conn, self._driver = conn, raw.driver_connection
        self._generation += 1
        return self._driver

    async def _reset(self) -> None:
        conn, self._conn, self._driver = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()
                await conn.close()
