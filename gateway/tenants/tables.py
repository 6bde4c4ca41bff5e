"""The tenants' tables (virtual keys and aggregated usage), on the store's metadata.

The store's migrations create exactly these (`0003_keys_and_usage.py`).
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Float, Index, Integer, String, Table

from gateway.agents.tables import metadata

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    # sha256 of the secret: the secret itself is shown once, at creation, and never kept.
    Column("key_hash", String(64), nullable=False, unique=True),
    # The secret's first characters, so people can tell their keys apart.
    Column("prefix", String(16), nullable=False),
    Column("models", JSON, nullable=True),
    Column("agents", JSON, nullable=True),
    Column("mcp_tools", JSON, nullable=True),
    Column("rpm", Integer, nullable=True),
    Column("tpm", Integer, nullable=True),
    Column("max_budget_usd", Float, nullable=True),
    Column("budget_period", String(16), nullable=True),
    Column("expires_at", Float, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
)

# One row per key, model and UTC day, incremented in batches: the table grows with
# keys, models and days, never with requests.
usage = Table(
    "usage",
    metadata,
    # "" for callers without a virtual key (static keys, no auth).
    Column("key_id", String(64), primary_key=True),
    Column("model", String(255), primary_key=True),
    Column("day", String(10), primary_key=True),  # YYYY-MM-DD, UTC
    Column("requests", BigInteger, nullable=False),
    Column("prompt_tokens", BigInteger, nullable=False),
    Column("completion_tokens", BigInteger, nullable=False),
    Column("cached_tokens", BigInteger, nullable=False),
    Column("cost_usd", Float, nullable=False),
    Index("ix_usage_day", "day"),
)
