"""End-to-end and unit tests of stateful agents, on SQLite and PostgreSQL (see conftest)."""
