"""Who is calling: a presented secret becomes a `Caller`, or a 401.

Three kinds of key: the admin key (`GATEWAY_ADMIN_KEY`, every right, the management
routes), static keys (`GATEWAY_API_KEYS`, every right but management) and virtual keys
(`sk-gw-…`, from the store, with allow-lists and limits). Virtual keys are looked up by
hash through a short TTL cache, so a revoked or expired key stops on every replica
within `CACHE_SECONDS` plus one database read, while a busy key costs no query.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Sequence

from gateway import errors
from gateway.tenants.caller import Caller
from gateway.tenants.keys import SECRET_PREFIX, KeyRecord, KeyStore, hash_secret

# Under the 5 s within which a revoked key must stop everywhere, with room for the read.
CACHE_SECONDS = 2.0
_MAX_CACHED = 100_000

ADMIN = Caller(key_name="admin", is_admin=True)
STATIC = Caller(key_name="static")


class Authenticator:
    def __init__(
        self,
        keys: KeyStore | None,
        *,
        static_keys: Sequence[str] = (),
        admin_key: str | None = None,
    ) -> None:
        self._keys = keys
        self._static = [k.encode() for k in static_keys]
        self._admin = admin_key.encode() if admin_key else None
        # hash -> (record or None, monotonic time the entry goes stale)
        self._cache: dict[str, tuple[KeyRecord | None, float]] = {}
        self._pending: dict[str, asyncio.Future[KeyRecord | None]] = {}

    @property
    def required(self) -> bool:
        """Whether every request must carry a key (any key is configured)."""
        return bool(self._static or self._admin)

    async def caller(self, token: bytes) -> Caller:
        """The caller for a presented secret; 401 if it is not a live key."""
        if token.startswith(SECRET_PREFIX.encode()) and self._keys is not None:
            record = await self._record(hash_secret(token))
            if record is not None:
                if not record.usable(time.time()):
                    state = "revoked" if record.revoked_at is not None else "expired"
                    raise errors.AuthenticationError(f"gateway key '{record.name}' is {state}")
                return record.caller()
            # Not a virtual key: an operator's static or admin key may look like one.
        admin = self._admin is not None and hmac.compare_digest(token, self._admin)
        # Compare against every key so timing does not reveal which one nearly matched.
        static = False
        for key in self._static:
            static |= hmac.compare_digest(token, key)
        if admin:
            return ADMIN
        if static:
            return STATIC
        raise errors.AuthenticationError("invalid gateway key")

    def forget(self, key_hash: str | None = None) -> None:
        """Drop cached lookups (this process sees a change it made at once)."""
        if key_hash is None:
            self._cache.clear()
        else:
            self._cache.pop(key_hash, None)

    async def _record(self, key_hash: str) -> KeyRecord | None:
        now = time.monotonic()
        cached = self._cache.get(key_hash)
        if cached is not None and cached[1] > now:
            return cached[0]
        # One query per hash at a time, however many requests arrive with it meanwhile.
        pending = self._pending.get(key_hash)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[KeyRecord | None] = asyncio.get_running_loop().create_future()
        self._pending[key_hash] = future
        try:
            assert self._keys is not None
            record = await self._keys.by_hash(key_hash)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here, so a lone failure logs no warning
            raise
        else:
            future.set_result(record)
        finally:
            del self._pending[key_hash]
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()
        self._cache[key_hash] = (record, time.monotonic() + CACHE_SECONDS)
        return record
