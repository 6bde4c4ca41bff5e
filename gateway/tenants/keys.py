"""Virtual keys: their shape, validation, and storage (only a hash of each secret).

The admin creates keys (`POST /v1/keys`, `gateway keys create`); the secret, `sk-gw-…`,
is returned once and only its sha256 is kept. A secret carries 256 random bits, so a
plain hash is as safe as a slow one and costs a microsecond on every request.
Revoking keeps the row (its usage stays readable) and stops the key.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from gateway import errors
from gateway.agents.store import AgentStore
from gateway.tenants import tables as t
from gateway.tenants.caller import Caller

SECRET_PREFIX = "sk-gw-"
_SHOWN_PREFIX = 10  # "sk-gw-" and four characters of the secret

Pattern = Annotated[str, StringConstraints(min_length=1, max_length=255)]
Period = Literal["daily", "monthly"]


def hash_secret(secret: str | bytes) -> str:
    raw = secret.encode() if isinstance(secret, str) else secret
    return hashlib.sha256(raw).hexdigest()


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


class KeyFields(BaseModel):
    """What PATCH may change; every field optional, null lifts a restriction."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    models: list[Pattern] | None = Field(default=None, max_length=1000)
    agents: list[Pattern] | None = Field(default=None, max_length=1000)
    mcp_tools: list[Pattern] | None = Field(default=None, max_length=1000)
    rpm: int | None = Field(default=None, ge=1, le=2**31 - 1)
    tpm: int | None = Field(default=None, ge=1, le=2**31 - 1)
    max_budget_usd: float | None = Field(default=None, ge=0, le=1e12)
    budget_period: Period | None = None
    # Unix seconds or an ISO 8601 time (UTC unless it names a zone).
    expires_at: float | str | None = None


class KeySpec(KeyFields):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")


def parse_fields(body: dict[str, Any], *, create: bool) -> dict[str, Any]:
    """The body's fields, validated; a mistake is a 400 naming the field."""
    model = KeySpec if create else KeyFields
    # JSON numbers may be integers where a float is wanted (a budget of 10).
    if isinstance(body.get("max_budget_usd"), int) and not isinstance(
        body.get("max_budget_usd"), bool
    ):
        body = {**body, "max_budget_usd": float(body["max_budget_usd"])}
    if isinstance(body.get("expires_at"), int) and not isinstance(body.get("expires_at"), bool):
        body = {**body, "expires_at": float(body["expires_at"])}
    try:
        spec = model.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or None
        raise errors.InvalidRequest(f"{field}: {err['msg']}", param=field) from None
    values = spec.model_dump(exclude_unset=True)
    if "name" in values and values["name"] is None:
        raise errors.InvalidRequest("'name' cannot be null", param="name")
    if "expires_at" in values:
        values["expires_at"] = _timestamp(values["expires_at"])
    return values


def _timestamp(value: float | str | None) -> float | None:
    if value is None or isinstance(value, float):
        return value
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise errors.InvalidRequest(
            "'expires_at' must be unix seconds or an ISO 8601 time", param="expires_at"
        ) from None
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC).timestamp()
    return when.timestamp()


@dataclass(frozen=True)
class KeyRecord:
    id: str
    name: str
    prefix: str
    models: tuple[str, ...] | None
    agents: tuple[str, ...] | None
    mcp_tools: tuple[str, ...] | None
    rpm: int | None
    tpm: int | None
    max_budget_usd: float | None
    budget_period: str | None
    expires_at: float | None
    created_at: float
    revoked_at: float | None

    def usable(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def caller(self) -> Caller:
        return Caller(
            key_name=self.name,
            key_id=self.id,
            models=self.models,
            agents=self.agents,
            mcp_tools=self.mcp_tools,
            rpm=self.rpm,
            tpm=self.tpm,
            max_budget_usd=self.max_budget_usd,
            budget_period=self.budget_period,
        )

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "key",
            "name": self.name,
            "prefix": self.prefix,
            "models": list(self.models) if self.models is not None else None,
            "agents": list(self.agents) if self.agents is not None else None,
            "mcp_tools": list(self.mcp_tools) if self.mcp_tools is not None else None,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "max_budget_usd": self.max_budget_usd,
            "budget_period": self.budget_period,
            "expires_at": self.expires_at,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


def _record(row: Any) -> KeyRecord:
    def tup(value: Any) -> tuple[str, ...] | None:
        return tuple(value) if value is not None else None

    return KeyRecord(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        models=tup(row.models),
        agents=tup(row.agents),
        mcp_tools=tup(row.mcp_tools),
        rpm=row.rpm,
        tpm=row.tpm,
        max_budget_usd=row.max_budget_usd,
        budget_period=row.budget_period,
        expires_at=row.expires_at,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


class KeyStore:
    """Virtual keys in the gateway's store (the agent store's database)."""

    def __init__(self, store: AgentStore) -> None:
        self.store = store

    async def create(self, body: dict[str, Any]) -> tuple[KeyRecord, str]:
        """A new key and its secret (shown this once)."""
        values = parse_fields(body, create=True)
        secret = new_secret()
        row = {
            "models": None,
            "agents": None,
            "mcp_tools": None,
            **values,
            "id": f"key-{uuid.uuid4().hex[:24]}",
            "key_hash": hash_secret(secret),
            "prefix": secret[:_SHOWN_PREFIX],
            "created_at": time.time(),
        }
        try:
            async with self.store.write() as conn:
                await conn.execute(insert(t.api_keys).values(row))
        except IntegrityError:
            raise _exists(values["name"]) from None
        return await self.get(row["id"]), secret

    async def list(self) -> list[KeyRecord]:
        async with self.store.read() as conn:
            rows = (await conn.execute(select(t.api_keys).order_by(t.api_keys.c.created_at))).all()
        return [_record(r) for r in rows]

    async def get(self, ref: str) -> KeyRecord:
        """By id or by name."""
        k = t.api_keys
        async with self.store.read() as conn:
            rows = (await conn.execute(select(k).where((k.c.id == ref) | (k.c.name == ref)))).all()
        if not rows:
            raise errors.NotFound(f"key '{ref}' does not exist", code="not_found", param="id")
        return _record(next((r for r in rows if r.id == ref), rows[0]))

    async def by_hash(self, key_hash: str) -> KeyRecord | None:
        k = t.api_keys
        async with self.store.read() as conn:
            row = (await conn.execute(select(k).where(k.c.key_hash == key_hash))).first()
        return _record(row) if row is not None else None

    async def update(self, ref: str, body: dict[str, Any]) -> KeyRecord:
        values = parse_fields(body, create=False)
        key = await self.get(ref)
        if values:
            try:
                async with self.store.write() as conn:
                    await conn.execute(
                        update(t.api_keys).where(t.api_keys.c.id == key.id).values(values)
                    )
            except IntegrityError:
                raise _exists(str(values.get("name"))) from None
        return await self.get(key.id)

    async def revoke(self, ref: str) -> KeyRecord:
        key = await self.get(ref)
        if key.revoked_at is None:
            async with self.store.write() as conn:
                await conn.execute(
                    update(t.api_keys)
                    .where(t.api_keys.c.id == key.id)
                    .values(revoked_at=time.time())
                )
        return await self.get(key.id)


def _exists(name: str) -> errors.Conflict:
    return errors.Conflict(f"a key named '{name}' already exists", code="key_exists", param="name")
