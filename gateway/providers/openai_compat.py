"""One pooled aiohttp client for every OpenAI-compatible upstream (OpenAI, Kimi, others).

Providers differ only by their `ProviderSpec` and `Profile`. The request body is parsed
once by the facade; here it is adjusted for the profile's quirks and serialized once.
Replies are passed on as the upstream's bytes; only usage and errors are read.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import orjson

from gateway import errors
from gateway.providers.base import AttemptHook, CallStats, ModelInfo, ModelSource, ProviderSpec
from gateway.providers.retry import RetryPolicy
from gateway.providers.sse import SSERelay

_FALLBACK_RETRY_SECONDS = 30.0


class OpenAICompatibleClient:
    """The client every caller uses: OpenAI chat requests in, OpenAI replies out.

    A provider with another wire format subclasses it (`AnthropicClient`), overriding
    `prepare`, `_read_reply` and `_relay`; retries, pooling and model caching stay here.
    """

    def __init__(self, spec: ProviderSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self._session: aiohttp.ClientSession | None = None
        self._chat_url = spec.base_url.rstrip("/") + "/chat/completions"
        self._models_url = spec.base_url.rstrip("/") + "/models"
        self._headers = {"Content-Type": "application/json"}
        if spec.api_key is not None:
            self._headers["Authorization"] = f"Bearer {spec.api_key.get_secret_value()}"
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=spec.connect_timeout, sock_read=spec.read_timeout
        )
        self._retry = RetryPolicy(spec.max_attempts, spec.retry_base_delay, spec.retry_max_delay)
        self._models: list[ModelInfo] | None = None
        self._models_expire = 0.0
        self._models_lock = asyncio.Lock()
        # Tracing's per-attempt hook; left None, each attempt pays one `is None` check.
        self.on_attempt: AttemptHook | None = None

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

    # -- request preparation -----------------------------------------------------

    def prepare(self, body: dict[str, Any], upstream_model: str) -> tuple[bytes, bool]:
        """Adjust a client's request for this upstream; return (payload, usage_injected).

        `usage_injected` is true when we asked for stream usage the client did not ask
        for, so the relay must drop that extra chunk.
        """
        profile = self.spec.profile
        body["model"] = upstream_model
        if profile.temperature_range is not None and "temperature" in body:
            body["temperature"] = _clamp_temperature(body, profile)
        if body.get("tool_choice") == "required" and profile.tool_choice_required == "reject":
            raise errors.InvalidRequest(
                f"{self.name} does not support tool_choice 'required'; use 'auto' or name "
                "a function",
                param="tool_choice",
            )
        _check_response_format(body, upstream_model, profile.json_schema_prefixes, self.name)
        injected = False
        if body.get("stream"):
            options = body.get("stream_options")
            if not isinstance(options, dict):
                options = {}
            if not options.get("include_usage"):
                body["stream_options"] = {**options, "include_usage": True}
                injected = True
        return orjson.dumps(body), injected

    # -- chat --------------------------------------------------------------------

    async def complete(self, payload: bytes, stats: CallStats) -> tuple[bytes, dict[str, Any]]:
        """A non-streaming completion: the upstream's bytes and their parsed form."""
        attempt = 0
        while True:
            attempt += 1
            stats.attempts = attempt
            t0 = time.perf_counter()
            try:
                async with self.session.post(
                    self._chat_url, data=payload, headers=self._headers
                ) as resp:
                    raw = await resp.read()
                    status = resp.status
                    retry_after = resp.headers.get("Retry-After")
            except TimeoutError:
                stats.upstream_seconds += time.perf_counter() - t0
                if self.on_attempt is not None:
                    self.on_attempt(stats, t0, errors.UpstreamTimeout.code)
                raise errors.UpstreamTimeout(f"{self.name} did not answer in time") from None
            except aiohttp.ClientError as exc:
                stats.upstream_seconds += time.perf_counter() - t0
                error: errors.GatewayError = errors.UpstreamUnavailable(
                    f"{self.name} is unreachable: {type(exc).__name__}"
                )
                retry_after = None
            else:
                stats.upstream_seconds += time.perf_counter() - t0
                if status == 200:
                    reply = self._read_reply(raw)
                    if reply is not None:
                        stats.add_usage(reply[1].get("usage"))
                        if self.on_attempt is not None:
                            self.on_attempt(stats, t0, None)
                        return reply
                    error = errors.UpstreamUnavailable(f"{self.name} sent an empty reply")
                else:
                    error = errors.from_upstream(self.name, status, raw, retry_after)
            if self.on_attempt is not None:
                self.on_attempt(stats, t0, error.code)
            delay = self._retry.delay_for(error, attempt, retry_after)
            if delay is None:
                raise error
            await asyncio.sleep(delay)

    async def stream(self, payload: bytes, stats: CallStats, *, drop_usage_chunk: bool) -> SSERelay:
        """Open a stream and read up to its first event, retrying until then."""
        attempt = 0
        while True:
            attempt += 1
            stats.attempts = attempt
            t0 = time.perf_counter()
            retry_after: str | None = None
            resp: aiohttp.ClientResponse | None = None
            try:
                resp = await self.session.post(self._chat_url, data=payload, headers=self._headers)
                if resp.status == 200:
                    relay = self._relay(resp, stats, drop_usage_chunk=drop_usage_chunk, t0=t0)
                    if await relay.read_first():
                        return relay
                    await relay.aclose()
                    error: errors.GatewayError = relay.failure or errors.UpstreamUnavailable(
                        f"{self.name} sent an empty stream"
                    )
                else:
                    raw = await resp.read()
                    retry_after = resp.headers.get("Retry-After")
                    resp.release()
                    error = errors.from_upstream(self.name, resp.status, raw, retry_after)
            except TimeoutError:
                _close(resp)
                stats.upstream_seconds += time.perf_counter() - t0
                if self.on_attempt is not None:
                    self.on_attempt(stats, t0, errors.UpstreamTimeout.code)
                raise errors.UpstreamTimeout(f"{self.name} did not answer in time") from None
            except aiohttp.ClientError as exc:
                _close(resp)
                error = errors.UpstreamUnavailable(
                    f"{self.name} is unreachable: {type(exc).__name__}"
                )
            stats.upstream_seconds += time.perf_counter() - t0
            if self.on_attempt is not None:
                self.on_attempt(stats, t0, error.code)
            delay = self._retry.delay_for(error, attempt, retry_after)
            if delay is None:
                raise error
            await asyncio.sleep(delay)

    # -- wire format: what a client for another protocol overrides ---------------

    def _read_reply(self, raw: bytes) -> tuple[bytes, dict[str, Any]] | None:
        """A 200 reply as (bytes for the client, parsed); None when it is empty."""
        parsed = _parse_completion(raw)
        return None if parsed is None else (raw, parsed)

    def _relay(
        self, resp: aiohttp.ClientResponse, stats: CallStats, *, drop_usage_chunk: bool, t0: float
    ) -> SSERelay:
        return SSERelay(
            resp, stats, drop_usage_chunk=drop_usage_chunk, t0=t0, on_end=self.on_attempt
        )

    # -- models ------------------------------------------------------------------

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
        if self.spec.static_models is not None:
            return self._infos(self.spec.static_models, "config"), "config"
        try:
            ids = await self.fetch_model_ids()
        except errors.GatewayError:
            return self._infos(self.spec.profile.builtin_models, "fallback"), "fallback"
        return self._infos(ids, "live"), "live"

    async def fetch_model_ids(self) -> list[str]:
        """Ask the upstream's `/models`; raise the mapped error when that fails."""
        timeout = aiohttp.ClientTimeout(total=self.spec.connect_timeout + 10)
        try:
            async with self.session.get(
                self._models_url, headers=self._headers, timeout=timeout
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

    def _infos(self, ids: Any, source: ModelSource) -> list[ModelInfo]:
        windows = {**self.spec.profile.builtin_models, **self.spec.context_windows}
        return [ModelInfo(i, self.name, windows.get(i), source) for i in ids]


def _clamp_temperature(body: dict[str, Any], profile: Any) -> Any:
    value = body["temperature"]
    if not isinstance(value, int | float) or isinstance(value, bool):
        return value
    low, high = profile.temperature_range
    value = min(max(float(value), low), high)
    n = body.get("n")
    floor = profile.min_temperature_multi_choice
    if floor is not None and isinstance(n, int) and n > 1:
        value = max(value, floor)
    return value


def _check_response_format(
    body: dict[str, Any], model: str, prefixes: tuple[str, ...] | None, provider: str
) -> None:
    fmt = body.get("response_format")
    if prefixes is None or not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return
    if not model.startswith(prefixes):
        raise errors.InvalidRequest(
            f"{provider}/{model} does not support structured output (json_schema); "
            "use a model that does or response_format {'type': 'json_object'}",
            param="response_format",
        )


def _parse_completion(raw: bytes) -> dict[str, Any] | None:
    """The parsed reply, or None when it is empty (no body or no choices)."""
    if not raw.strip():
        return None
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(parsed, dict) or not parsed.get("choices"):
        return None
    return parsed


def _close(resp: aiohttp.ClientResponse | None) -> None:
    if resp is not None:
        resp.close()
