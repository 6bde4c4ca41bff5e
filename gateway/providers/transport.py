"""One provider's connection: the pooled aiohttp session, THE retry loop, timeouts, models.

A transport knows where to send bytes and how to authenticate, not what they mean:
the wire format (`wires.py`) encodes requests and reads replies. Every upstream call
of the gateway goes through `_attempts`, so retries, timeouts, error mapping, the
per-attempt hook and the call record's time are the same for JSON replies, streams
and native pass-through.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Literal, Protocol, TypeVar

import aiohttp
import orjson

from gateway import errors
from gateway.providers.base import AttemptHook, CallRecord, ModelInfo, ModelSource, ProviderSpec
from gateway.providers.retry import RetryPolicy

T = TypeVar("T")
R = TypeVar("R", bound="StreamReader")
Auth = Literal["bearer", "anthropic"]

ANTHROPIC_VERSION = "2023-06-01"
_FALLBACK_RETRY_SECONDS = 30.0


class StreamReader(Protocol):
    """What `Transport.open_stream` needs of a stream reader (see `streams.py`)."""

    @property
    def failure(self) -> errors.GatewayError | None: ...

    async def read_first(self) -> bool: ...

    async def aclose(self) -> None: ...


class _AttemptFailed(Exception):
    """An attempt got an answer that is an error; the retry policy decides what next."""

    def __init__(self, error: errors.GatewayError, retry_after: str | None = None) -> None:
        self.error = error
        self.retry_after = retry_after


class Transport:
    def __init__(
        self,
        spec: ProviderSpec,
        *,
        base_url: str | None = None,
        auth: Auth = "bearer",
        on_attempt: AttemptHook | None = None,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.base_url = (base_url or spec.base_url).rstrip("/")
        self.headers = _headers(spec, auth)
        self.on_attempt = on_attempt
        self._session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=spec.connect_timeout, sock_read=spec.read_timeout
        )
        self._retry = RetryPolicy(spec.max_attempts, spec.retry_base_delay, spec.retry_max_delay)
        self._models: list[ModelInfo] | None = None
        self._models_expire = 0.0
        self._models_lock = asyncio.Lock()

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self.spec.max_connections, ttl_dns_cache=300, enable_cleanup_closed=True
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            auto_decompress=True,
            skip_auto_headers=("User-Agent",),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise errors.UpstreamUnavailable(f"{self.name}: client is not started")
        return self._session

    def url(self, path: str) -> str:
        return self.base_url + path

    # -- calls ---------------------------------------------------------------------

    def post(
        self,
        url: str,
        payload: bytes,
        record: CallRecord,
        read: Callable[[bytes, CallRecord], T | None],
        headers: Mapping[str, str] | None = None,
    ) -> Awaitable[T]:
        """POST and return `read(body, record)` of the 200 reply (None: it was empty)."""
        session = self.session
        sent = self.headers if headers is None else {**self.headers, **headers}

        async def once(t0: float) -> T:
            async with session.post(url, data=payload, headers=sent) as resp:
                raw = await resp.read()
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
            record.upstream_seconds += time.perf_counter() - t0
            if status != 200:
                raise _AttemptFailed(
                    errors.from_upstream(self.name, status, raw, retry_after), retry_after
                )
            result = read(raw, record)
            if result is None:
                raise _AttemptFailed(errors.UpstreamUnavailable(f"{self.name} sent an empty reply"))
            if self.on_attempt is not None:
                self.on_attempt(record, t0, None)
            return result

        return self._attempts(record, once)

    def open_stream(
        self,
        url: str,
        payload: bytes,
        record: CallRecord,
        reader: Callable[[aiohttp.ClientResponse, float], R],
        headers: Mapping[str, str] | None = None,
    ) -> Awaitable[R]:
        """POST a streaming request; return the reader once it holds the first event.

        Retries until then: a stream that fails before its first event is a failed
        attempt like any other. `T` is a `StreamReader`.
        """
        session = self.session
        sent = self.headers if headers is None else {**self.headers, **headers}

        async def once(t0: float) -> R:
            resp = await session.post(url, data=payload, headers=sent)
            try:
                if resp.status != 200:
                    raw = await resp.read()
                    retry_after = resp.headers.get("Retry-After")
                    raise _AttemptFailed(
                        errors.from_upstream(self.name, resp.status, raw, retry_after),
                        retry_after,
                    )
                stream = reader(resp, t0)
                if await stream.read_first():
                    return stream
                await stream.aclose()
                failure = stream.failure or errors.UpstreamUnavailable(
                    f"{self.name} sent an empty stream"
                )
                raise _AttemptFailed(failure)
            except BaseException:
                # Cancelled or failed before the stream was handed over: nobody else
                # will release the connection.
                resp.close()
                raise

        return self._attempts(record, once, stream=True)

    async def _attempts(
        self, record: CallRecord, once: Callable[[float], Awaitable[T]], *, stream: bool = False
    ) -> T:
        """THE retry loop: 429, 5xx, 408/504, connection errors and empty replies are
        tried again within the budget; a socket timeout of ours is final. The error that
        ends the call is recorded as its outcome."""
        attempt = 0
        while True:
            attempt += 1
            record.attempts = attempt
            t0 = time.perf_counter()
            retry_after: str | None = None
            try:
                return await once(t0)
            except _AttemptFailed as failed:
                error, retry_after = failed.error, failed.retry_after
                if stream:
                    record.upstream_seconds += time.perf_counter() - t0
            except TimeoutError:
                record.upstream_seconds += time.perf_counter() - t0
                if self.on_attempt is not None:
                    self.on_attempt(record, t0, errors.UpstreamTimeout.code)
                timeout = errors.UpstreamTimeout(f"{self.name} did not answer in time")
                record.fail(timeout)
                raise timeout from None
            except aiohttp.ClientError as exc:
                record.upstream_seconds += time.perf_counter() - t0
                error = errors.UpstreamUnavailable(
                    f"{self.name} is unreachable: {type(exc).__name__}"
                )
            if self.on_attempt is not None:
                self.on_attempt(record, t0, error.code)
            delay = self._retry.delay_for(error, attempt, retry_after)
            if delay is None:
                record.fail(error)
                raise error
            await asyncio.sleep(delay)

    # -- models --------------------------------------------------------------------

    async def models(self) -> list[ModelInfo]:
        """The provider's models, cached; concurrent misses share one upstream call."""
        if self._models is not None and time.monotonic() < self._models_expire:
            return self._models
        async with self._models_lock:
            if self._models is not None and time.monotonic() < self._models_expire:
                return self._models
            models, source = await self._load_models()
            ttl = self.spec.models_ttl if source != "fallback" else _FALLBACK_RETRY_SECONDS
            self._models = models
            self._models_expire = time.monotonic() + ttl
            return models

    def lists(self, model: str) -> bool:
        """Whether the cached model list has `model`; metrics use it to bound labels."""
        return self._models is not None and any(m.id == model for m in self._models)

    async def _load_models(self) -> tuple[list[ModelInfo], ModelSource]:
        profile = self.spec.profile
        if self.spec.static_models is not None:
            return self._infos(self.spec.static_models, "config"), "config"
        try:
            ids = await self.fetch_model_ids()
        except errors.GatewayError:
            return self._infos(list(profile.builtin_models), "fallback"), "fallback"
        if profile.list_builtin_aliases:
            # Anthropic lists dated snapshots only; the aliases people type come from
            # the built-in list, so `anthropic/claude-sonnet-4-5` resolves against it.
            ids += [alias for alias in profile.builtin_models if alias not in ids]
        return self._infos(ids, "live"), "live"

    async def fetch_model_ids(self) -> list[str]:
        """Ask the upstream's model list; raise the mapped error when that fails."""
        timeout = aiohttp.ClientTimeout(total=self.spec.connect_timeout + 10)
        try:
            async with self.session.get(
                self.url(self.spec.profile.models_path), headers=self.headers, timeout=timeout
            ) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    raise errors.from_upstream(self.name, resp.status, raw)
        except TimeoutError:
            raise errors.UpstreamTimeout(f"{self.name}: listing models timed out") from None
        except aiohttp.ClientError as exc:
            raise errors.UpstreamUnavailable(
                f"{self.name} is unreachable: {type(exc).__name__}"
            ) from None
        try:
            data = orjson.loads(raw)["data"]
            ids = [str(item["id"]) for item in data]
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise errors.UpstreamUnavailable(f"{self.name}: malformed model list") from exc
        prefixes = self.spec.profile.model_prefixes
        if prefixes:
            ids = [i for i in ids if i.startswith(prefixes)]
        return ids

    def _infos(self, ids: list[str] | tuple[str, ...], source: ModelSource) -> list[ModelInfo]:
        profile = self.spec.profile
        windows = {**profile.known_windows, **profile.builtin_models, **self.spec.context_windows}
        return [
            ModelInfo(i, self.name, windows.get(i) or profile.default_window(i), source)
            for i in ids
        ]


def _headers(spec: ProviderSpec, auth: Auth) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    key = spec.api_key.get_secret_value() if spec.api_key is not None else None
    if auth == "anthropic":
        headers["anthropic-version"] = ANTHROPIC_VERSION
        if key is not None:
            headers["x-api-key"] = key
            if spec.profile.type != "anthropic":
                # Compatible endpoints (Moonshot's) take the key as a bearer token.
                headers["Authorization"] = f"Bearer {key}"
    elif key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return headers
