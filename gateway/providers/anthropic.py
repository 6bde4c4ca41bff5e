"""The Anthropic provider: the Messages API behind the OpenAI chat interface.

Callers see an `OpenAICompatibleClient` (same `prepare`, `complete`, `stream`,
`models`); only the wire differs. The request is translated once in `prepare`,
replies on their way back, by the pure functions of `anthropic_translate` and
`anthropic_stream`. Retries, pooling and the model-list cache are inherited.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import aiohttp
import orjson

from gateway.providers.anthropic_stream import StreamTranslator
from gateway.providers.anthropic_translate import to_anthropic_request, to_openai_completion
from gateway.providers.base import AttemptHook, CallStats, ModelInfo, ModelSource, ProviderSpec
from gateway.providers.openai_compat import OpenAICompatibleClient
from gateway.providers.sse import SSERelay

ANTHROPIC_VERSION = "2023-06-01"
# Every Claude model since Claude 3 has a 200k-token window (1M is an opt-in beta), so
# a dated snapshot id the built-in list does not name still gets its window.
CLAUDE_CONTEXT_WINDOW = 200_000
# The API pages its model list, 20 by default; 1000 is its maximum page.
_MODELS_PAGE = "/models?limit=1000"


class AnthropicClient(OpenAICompatibleClient):
    def __init__(self, spec: ProviderSpec) -> None:
        super().__init__(spec)
        base = spec.base_url.rstrip("/")
        self._chat_url = base + "/messages"
        self._models_url = base + _MODELS_PAGE
        self._headers = {"Content-Type": "application/json", "anthropic-version": ANTHROPIC_VERSION}
        if spec.api_key is not None:
            self._headers["x-api-key"] = spec.api_key.get_secret_value()

    def prepare(self, body: dict[str, Any], upstream_model: str) -> tuple[bytes, bool]:
        """The Messages request; `usage_injected` is true when the client did not ask for
        stream usage (Anthropic always reports it; the relay then leaves its chunk out)."""
        request = to_anthropic_request(body, upstream_model)
        options = body.get("stream_options")
        wants_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        return orjson.dumps(request), bool(body.get("stream")) and not wants_usage

    def _read_reply(self, raw: bytes) -> tuple[bytes, dict[str, Any]] | None:
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(message, dict) or message.get("type") != "message":
            return None
        reply = to_openai_completion(message, created=int(time.time()))
        return orjson.dumps(reply), reply

    def _relay(
        self, resp: aiohttp.ClientResponse, stats: CallStats, *, drop_usage_chunk: bool, t0: float
    ) -> SSERelay:
        return AnthropicRelay(
            resp, stats, drop_usage_chunk=drop_usage_chunk, t0=t0, on_end=self.on_attempt
        )

    async def fetch_model_ids(self) -> list[str]:
        # The API lists dated snapshots only; the aliases people type come from the
        # built-in list, so `anthropic/claude-sonnet-4-5` resolves against a live list.
        ids = await super().fetch_model_ids()
        return ids + [alias for alias in self.spec.profile.builtin_models if alias not in ids]

    def _infos(self, ids: Any, source: ModelSource) -> list[ModelInfo]:
        return [
            replace(info, context_window=CLAUDE_CONTEXT_WINDOW)
            if info.context_window is None and info.id.startswith("claude-")
            else info
            for info in super()._infos(ids, source)
        ]


class AnthropicRelay(SSERelay):
    """Relays Anthropic's event stream as OpenAI chunks, with `SSERelay`'s error handling."""

    def __init__(
        self,
        resp: aiohttp.ClientResponse,
        stats: CallStats,
        *,
        drop_usage_chunk: bool,
        t0: float,
        on_end: AttemptHook | None = None,
    ) -> None:
        super().__init__(resp, stats, drop_usage_chunk=drop_usage_chunk, t0=t0, on_end=on_end)
        self._translator = StreamTranslator(
            stats.provider, include_usage=not drop_usage_chunk, created=int(time.time())
        )

    async def read_first(self) -> bool:
        started = await super().read_first()
        if self.failure is not None:
            # The attempt failed before its first token, so it has no time to first token.
            self._stats.first_token_seconds = None
        return started

    def _feed(self, chunk: bytes) -> bytes:
        complete = self._complete_events(chunk)
        if not complete or self.failure is not None:
            return b""
        translator = self._translator
        out: list[bytes] = []
        for event in complete.split(b"\n\n"):
            if not event.strip():
                continue
            out.append(translator.feed_event(event))
            if translator.error is not None and not translator.started:
                # Nothing has reached the client yet: hand the error to the retry policy.
                self.failure = translator.error
                self._saw_done = True
                return b""
        if translator.error is not None:
            self._stats.outcome = translator.error.code or "upstream_error"
        self._saw_finish = translator.finished
        self._saw_done = translator.done
        if b"usage" in complete:
            self._stats.add_usage(translator.openai_usage)
        return b"".join(out)
