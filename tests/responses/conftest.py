"""`/v1/responses` tests run on SQLite and, where `GATEWAY_TEST_POSTGRES_URL` is set, PostgreSQL.

The store fixtures are the agent tests' own (stored responses live in the agent store).
"""

from __future__ import annotations

from tests.agents.conftest import agent_gateway, backend, gw, postgres_url, rest

__all__ = ["agent_gateway", "backend", "gw", "postgres_url", "rest"]
