"""The agent store fixtures (SQLite, and PostgreSQL where configured) for the fuzz tests."""

from __future__ import annotations

from tests.agents.conftest import agent_gateway, backend, postgres_url

__all__ = ["agent_gateway", "backend", "postgres_url"]
