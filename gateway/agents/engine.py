"""The store's database engine: plain URLs to async drivers, SQLite set-up, migrations.

Users write `sqlite:///data/gateway.db` or `postgresql://user@host/db`; the gateway
picks aiosqlite or asyncpg. SQLite runs in WAL mode with a busy timeout. The pool
holds `GATEWAY_DATABASE_POOL_SIZE` connections and no more; every use of one is short
(no agent turn keeps one while it waits on a model), and a request that finds none
free within `POOL_TIMEOUT` seconds, or a server that refuses more, is `StoreBusy`
(`busy.py`). Reads
(`reader(engine)`) run outside transactions on both databases. Writes
(`writer(engine)`) begin, on SQLite, with `BEGIN IMMEDIATE`: a transaction that reads
and then writes would otherwise fail at once (SQLITE_BUSY, busy timeout ignored)
whenever another connection wrote in between.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Connection, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.agents import locking
from gateway.agents.nul import replace_nul_in_parameters
from gateway.settings import ConfigError

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 10_000
# Execution option marking a write transaction (see `writer`).
WRITE_OPTION = "gateway_write"
# How long a request waits for a free connection before it is answered 503: long
# enough to ride out a burst of turns starting at once, short of a client's patience.
POOL_TIMEOUT = 5.0
# How long a running turn waits for its next transaction (`locking.TurnSlots`): a turn
# in progress is worth more patience than a new request.
TURN_SLOT_TIMEOUT = 30.0

_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "postgresql+psycopg": "postgresql+asyncpg",
    "postgresql+psycopg2": "postgresql+asyncpg",
}


def async_url(raw: str) -> URL:
    """`GATEWAY_DATABASE_URL` as the async driver's URL; a clear error for anything else."""
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ConfigError(
            "database_url: not a database URL; use sqlite:///path.db or postgresql://user@host/db"
        ) from None
    driver = _DRIVERS.get(url.drivername)
    if driver is None:
        raise ConfigError(
            f"database_url: unsupported database '{url.drivername}'; use sqlite:///path.db "
            "or postgresql://user@host/db"
        )
    url = url.set(drivername=driver)
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:" or "mode=memory" in str(url):
            raise ConfigError(
                "database_url: an in-memory SQLite database cannot be shared by the "
                "gateway's connections; use a file, e.g. sqlite:///data/gateway.db"
            )
    elif "sslmode" in url.query:
        # libpq spells it sslmode; asyncpg takes the same values as `ssl`.
        query = dict(url.query)
        query["ssl"] = query.pop("sslmode")
        url = url.set(query=query)
    return url


def sqlite_path(url: URL) -> Path | None:
    if url.get_backend_name() != "sqlite" or not url.database:
        return None
    return Path(url.database).resolve()


def create_engine(url: URL, pool_size: int) -> AsyncEngine:
    # No overflow: the pool size is the promise made to the server's connection limit.
    pool = {"pool_size": pool_size, "max_overflow": 0, "pool_timeout": POOL_TIMEOUT}
    if url.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, **pool)
        _configure_sqlite(engine)
    else:
        # No pre-ping: it costs three round trips a checkout. After a server restart the
        # first statement fails, SQLAlchemy recycles the whole pool, and that request's
        # error goes to its client (a failed turn resumes when its input is sent again).
        engine = create_async_engine(url, **pool)
    # PostgreSQL refuses NUL in text: what a model wrote is stored with U+FFFD instead.
    replace_nul_in_parameters(engine)
    return engine


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        # We emit BEGIN ourselves (below), so the driver must not.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # WAL with synchronous=NORMAL survives a crash of the process; only an OS crash
        # or power loss may drop the last commits.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Reads run without a transaction (each statement on its own, as `reader` does
        # on PostgreSQL); writes take the write lock up front.
        if conn.get_execution_options().get(WRITE_OPTION, False):
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def writer(engine: AsyncEngine) -> AsyncEngine:
    """The same pool, for transactions that write: SQLite begins them IMMEDIATE."""
    return engine.execution_options(**{WRITE_OPTION: True})


def reader(engine: AsyncEngine) -> AsyncEngine:
    """The same pool, for reads: no transaction, so no BEGIN and ROLLBACK round trips.

    A read of several statements (an agent and its memory blocks) may then see a
    change committed between them; none of the store's reads needs more than that.
    """
    if engine.dialect.name == "sqlite":
        return engine  # its "begin" hook starts nothing for reads
    return engine.execution_options(isolation_level="AUTOCOMMIT")


async def migrate(engine: AsyncEngine) -> str | None:
    """Bring the schema to the newest revision, which is returned.

    Concurrent starters wait for each other; the second finds nothing to do.
    """
    async with writer(engine).begin() as conn:
        await locking.migration_lock(conn)
        return await conn.run_sync(_upgrade)


def _upgrade(connection: Connection) -> str | None:
    # Alembic reports every start at INFO; the logging set-up shows that at DEBUG only.
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
    return MigrationContext.configure(connection).get_current_revision()
