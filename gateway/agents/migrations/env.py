"""Alembic environment for the agent store.

The gateway runs migrations itself at start-up (`engine.migrate`), handing Alembic an
open connection in `config.attributes["connection"]`. Without one (a developer running
`alembic -c gateway/agents/migrations/alembic.ini …`), the URL comes from the ini file
or `GATEWAY_DATABASE_URL` and the SQL is printed (offline mode) or run synchronously.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine

from gateway.agents.tables import metadata
from gateway.tenants import tables as _tenant_tables  # noqa: F401  (registers them)

config = context.config
connection = config.attributes.get("connection")

if connection is not None:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    url = os.environ.get("GATEWAY_DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
    else:
        engine = create_engine(str(url))
        with engine.connect() as conn:
            context.configure(connection=conn, target_metadata=metadata)
            with context.begin_transaction():
                context.run_migrations()
