"""Unit tests of the provider layer: the router, `prepare` (wire encoding), the relay
filter and the transport's retry loop (against the fake upstream, no gateway)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pydantic import SecretStr

from gateway import errors
from gateway.providers.base import CallRecord, ModelInfo, ProviderSpec
from gateway.providers.profiles import KIMI, OPENAI, Profile
from gateway.providers.provider import Provider
from gateway.providers.registry import build_providers
from gateway.providers.relay import DONE, RelayFilter
from gateway.providers.wires import OpenAIChatWire
from gateway.routing.router import Router
from tests.fake_upstream import FakeUpstream, Reply
from tests.support.chunks import chunk

HI = [{"role": "user", "content": "hi"}]


def spec(name: str = "openai", profile: Profile = OPENAI, **kw: Any) -> ProviderSpec:
    kw.setdefault("base_url", "http://127.0.0.1:9/v1")
    return ProviderSpec(name, profile, api_key=SecretStr("k"), enabled=True, **kw)


# -- prepare (OpenAI chat wire encoding) ------------------------------------------


def encode(body: dict[str, Any], model: str, profile: Profile = KIMI) -> tuple[dict, bool]:
    payload, injected = OpenAIChatWire().encode(body, model, spec("kimi", profile))
    return json.loads(payload), injected


def test_prepare_sets_the_upstream_model_and_asks_for_stream_usage_once():
    sent, injected = encode({"model": "kimi/x", "messages": HI, "stream": True}, "moonshot-v1-8k")
    assert sent["model"] == "moonshot-v1-8k" and injected
    assert sent["stream_options"] == {"include_usage": True}
    options = {"include_usage": True, "other": 1}
    sent, injected = encode(
        {"model": "m", "messages": HI, "stream": True, "stream_options": options}, "moonshot-v1-8k"
    )
    assert not injected and sent["stream_options"] == options
    assert encode({"model": "m", "messages": HI}, "x", OPENAI)[1] is False


def test_prepare_applies_kimi_quirks_by_model():
    sent, _ = encode({"messages": HI, "temperature": 1.7, "n": 2}, "kimi-k2-0905-preview")
    assert sent["temperature"] == 1.0
    sent, _ = encode({"messages": HI, "temperature": 0.0, "n": 2}, "moonshot-v1-8k")
    assert sent["temperature"] == 0.3
    sent, _ = encode({"messages": HI, "temperature": 0.5, "top_p": 0.1}, "kimi-k2.6")
    assert "temperature" not in sent and "top_p" not in sent
    with pytest.raises(errors.InvalidRequest) as err:
        encode({"messages": HI, "n": 3}, "kimi-k2.5")
    assert err.value.param == "n"
    with pytest.raises(errors.InvalidRequest) as err:
        encode({"messages": HI, "tool_choice": "required"}, "kimi-k2.6")
    assert err.value.param == "tool_choice"


def test_prepare_leaves_other_providers_alone():
    body = {"messages": HI, "temperature": 1.7, "tool_choice": "required", "n": 4, "x": [1]}
    sent, _ = encode(dict(body), "gpt-4o", OPENAI)
    assert sent == {**body, "model": "gpt-4o"}


# -- the relay filter ------------------------------------------------------------------


def sse(*objects: Any) -> bytes:
    return b"".join(
        DONE if o == "[DONE]" else b"data: " + json.dumps(o).encode() + b"\n\n" for o in objects
    )


def relay(data: bytes, *, drop: bool, pieces: int = 7) -> tuple[bytes, CallRecord]:
    record = CallRecord("openai", "gpt-4o-mini")
    f = RelayFilter(record, drop_usage_chunk=drop)
    out = b""
    for i in range(0, len(data), pieces):  # split anywhere, as TCP does
        out += b"".join(f.feed(data[i : i + pieces]))
    return out + b"".join(f.end()), record


USAGE = {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}
WITH_USAGE = sse(
    chunk("a", usage=None),
    chunk(None, "stop", usage=None),
    chunk(choices=[], usage=USAGE),
    "[DONE]",
)


def test_relay_forwards_bytes_and_counts_usage():
    out, record = relay(WITH_USAGE, drop=False)
    assert out == WITH_USAGE
    assert (record.prompt_tokens, record.completion_tokens) == (4, 2)


def test_relay_leaves_out_the_usage_the_gateway_asked_for():
    out, record = relay(WITH_USAGE, drop=True)
    assert b"usage" not in out and out.endswith(DONE)
    assert out.count(b"data: ") == 3
    assert record.prompt_tokens == 4


def test_relay_counts_moonshot_usage_inside_the_finish_choice():
    final = chunk(None, "stop")
    final["choices"][0]["usage"] = USAGE
    _, record = relay(sse(chunk("a"), final, "[DONE]"), drop=True)
    assert record.completion_tokens == 2


def test_relay_adds_a_missing_terminator_but_not_after_an_error():
    out, _ = relay(sse(chunk("a"), chunk(None, "stop")), drop=False)
    assert out.endswith(DONE)
    out, record = relay(sse(chunk("a"), {"error": {"code": "overloaded"}}), drop=False)
    assert not out.endswith(DONE) and record.outcome == "overloaded"


def test_relay_raises_when_the_stream_ends_unfinished():
    with pytest.raises(errors.UpstreamUnavailable):
        relay(sse(chunk("a")), drop=False)


def test_relay_does_not_take_a_model_saying_done_for_the_terminator():
    said = chunk("data: [DONE]")
    out, _ = relay(sse(said, chunk(None, "stop")), drop=False)
    assert out.endswith(DONE) and out.count(DONE) == 1


# -- the router ------------------------------------------------------------------------


class FakeProvider(Provider):
    """A provider whose model list is given; nothing is sent anywhere."""

    def __init__(self, name: str, ids: list[str], source: str = "live") -> None:
        self.name = name
        self.infos = [ModelInfo(i, name, None, source) for i in ids]  # type: ignore[arg-type]

    async def models(self) -> list[ModelInfo]:
        return self.infos


def router(aliases: dict[str, str] | None = None) -> Router:
    providers = {
        "openai": FakeProvider("openai", ["gpt-4o", "shared"]),
        "kimi": FakeProvider("kimi", ["kimi-k2.6", "shared"]),
    }
    specs = {
        "openai": spec(),
        "kimi": spec("kimi", KIMI),
        "off": ProviderSpec(
            "off", OPENAI, "http://x", None, False, disabled_reason="set OFF_API_KEY"
        ),
    }
    return Router(specs, providers, aliases)  # type: ignore[arg-type]


async def test_router_resolves_handles_bare_ids_and_aliases():
    r = router({"fast": "kimi/kimi-k2.6"})
    route = await r.resolve("kimi/kimi-k2.6")
    assert (route.handle, route.provider, route.model) == ("kimi/kimi-k2.6", "kimi", "kimi-k2.6")
    assert (await r.resolve("gpt-4o")).handle == "openai/gpt-4o"
    assert (await r.resolve("fast")).handle == "kimi/kimi-k2.6"


@pytest.mark.parametrize(
    ("handle", "error", "code"),
    [
        ("shared", errors.InvalidRequest, "ambiguous_model"),
        ("kimi/nope", errors.ModelNotFound, "model_not_found"),
        ("nosuch/gpt-4o", errors.ModelNotFound, "model_not_found"),
        ("off/x", errors.ProviderNotEnabled, "provider_not_enabled"),
        ("kimi/", errors.InvalidRequest, "invalid_value"),
    ],
)
async def test_router_refusals(handle, error, code):
    with pytest.raises(error) as caught:
        await router().resolve(handle)
    assert caught.value.code == code and caught.value.param == "model"


async def test_router_accepts_any_id_while_only_the_fallback_list_is_known():
    r = router()
    r.clients["kimi"] = FakeProvider("kimi", ["kimi-k2.6"], source="fallback")  # type: ignore[assignment]
    assert (await r.resolve("kimi/brand-new-model")).model == "brand-new-model"


# -- the transport's retry loop ----------------------------------------------------------


@pytest.fixture
async def openai_provider():
    with FakeUpstream(models=["gpt-4o-mini"]) as fake:
        specs = {"openai": spec(base_url=fake.base_url, retry_base_delay=0.0, max_connections=1)}
        provider = build_providers(specs)["openai"]
        await provider.start()
        try:
            yield provider, fake
        finally:
            await provider.close()


async def test_408_and_504_are_retried_within_the_budget(openai_provider):
    provider, fake = openai_provider
    fake.script(Reply.error(504), Reply.error(408), Reply.completion("late but fine"))
    payload, _ = provider.prepare({"messages": HI}, "gpt-4o-mini")
    record = CallRecord("openai", "gpt-4o-mini")
    completion = await provider.complete(payload, record)
    assert completion.content == "late but fine" and record.attempts == 3
    fake.script(*[Reply.error(504)] * 3)
    with pytest.raises(errors.UpstreamTimeout):
        await provider.complete(payload, CallRecord("openai", "gpt-4o-mini"))


async def test_a_stream_cancelled_during_its_first_read_releases_the_connection(
    openai_provider,
):
    provider, fake = openai_provider  # one pooled connection only
    # Headers and a comment at once, then nothing for a long while: the stream is being
    # read for its first event when the caller is cancelled.
    fake.script(Reply.sse([": keep-alive\n\n", chunk("a"), chunk(None, "stop")], delay=30))
    payload, _ = provider.prepare({"messages": HI, "stream": True}, "gpt-4o-mini")
    opening = asyncio.ensure_future(provider.stream(payload, CallRecord("openai", "m")))
    for _ in range(1000):  # until the fake has the request (it records it at once)
        if fake.chat_requests:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)
    opening.cancel()
    with pytest.raises(asyncio.CancelledError):
        await opening
    # A leaked response would hold the pool's only connection: this would never start.
    plain, _ = provider.prepare({"messages": HI}, "gpt-4o-mini")
    record = CallRecord("openai", "gpt-4o-mini")
    completion = await asyncio.wait_for(provider.complete(plain, record), timeout=20)
    assert completion.content == "echo: hi"
