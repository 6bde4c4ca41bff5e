"""Model listing and routing: live lists, fallback, filtering, bare ids, aliases."""

from __future__ import annotations

import asyncio

import httpx2
import openai
import pytest

from tests.fake_upstream import Reply

HELLO = [{"role": "user", "content": "hi"}]


def sdk(gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key="k", max_retries=0)


def test_live_list_has_handles_and_context_windows(gateway):
    models = {m.id: m for m in sdk(gateway).models.list()}
    assert set(models) == {"openai/gpt-4o-mini", "openai/gpt-4o", "openai/shared-model"}
    assert models["openai/gpt-4o"].model_extra["context_window"] == 128000
    assert "context_window" not in models["openai/shared-model"].model_extra


def test_get_one_model_by_handle_with_slash(gateway):
    model = sdk(gateway).models.retrieve("openai/gpt-4o-mini")
    assert model.id == "openai/gpt-4o-mini" and model.owned_by == "openai"
    with pytest.raises(openai.NotFoundError):
        sdk(gateway).models.retrieve("openai/nope")


def test_kimi_keeps_only_its_ids_and_falls_back_when_listing_fails(make_gateway, upstream):
    upstream.models = [
        "kimi-k2-0905-preview", "moonshot-v1-8k", "whisper-1", "kimi-k2.6", "kimi-k2.9-new"
    ]  # fmt: skip
    gateway = make_gateway({"KIMI_API_KEY": "sk-kimi", "KIMI_BASE_URL": upstream.base_url})
    live = {m.id: m.model_extra.get("context_window") for m in sdk(gateway).models.list()}
    assert {"kimi/kimi-k2-0905-preview", "kimi/moonshot-v1-8k", "kimi/kimi-k2.6"} <= live.keys()
    assert "kimi/whisper-1" not in live
    # Windows: known ids (current or older), and a new K2.x id by its family.
    assert live["kimi/kimi-k2-0905-preview"] == live["kimi/kimi-k2.9-new"] == 262144

    upstream.script_models(*[Reply.error(503)] * 4)
    fresh = make_gateway(
        {
            "KIMI_API_KEY": "sk-kimi",
            "KIMI_BASE_URL": upstream.base_url,
            "GATEWAY_DISABLE_OPENAI_PROVIDER": "1",
        }
    )
    models = {m.id: m.model_extra.get("context_window") for m in sdk(fresh).models.list()}
    # The fallback is today's lineup: no discontinued preview ids.
    assert models["kimi/kimi-k2.6"] == models["kimi/kimi-k2.5"] == 262144
    assert models["kimi/moonshot-v1-8k"] == 8192
    assert "kimi/kimi-k2-0905-preview" not in models and len(models) == 5
    # With only the fallback list, an unlisted id is left for the upstream to judge.
    reply = sdk(fresh).chat.completions.create(model="kimi/kimi-k2-0905-preview", messages=HELLO)
    assert reply.choices[0].message.content == "echo: hi"


async def test_concurrent_misses_make_one_upstream_list_call(gateway, upstream):
    upstream.script_models(
        Reply.delay(
            0.3, Reply.json({"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model"}]})
        )
    )
    async with openai.AsyncOpenAI(base_url=gateway.base_url, api_key="k", max_retries=0) as c:
        await asyncio.gather(
            *(
                c.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO)
                for _ in range(10)
            ),
            *(c.models.list() for _ in range(5)),
        )
    assert len(upstream.models_requests) == 1


def test_bare_id_resolves_when_unique_and_names_candidates_otherwise(make_gateway, upstream):
    gateway = make_gateway({"KIMI_API_KEY": "sk-kimi", "KIMI_BASE_URL": upstream.base_url})
    upstream.models = ["gpt-4o-mini", "kimi-latest", "kimi-shared"]
    assert sdk(gateway).chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert upstream.chat_requests[-1].json["model"] == "gpt-4o-mini"
    r = httpx2.post(
        gateway.base_url + "/chat/completions", json={"model": "kimi-shared", "messages": HELLO}
    )
    # openai lists "kimi-shared" too (the fake serves one list), kimi keeps kimi-* ids.
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "ambiguous_model"
    assert "kimi/kimi-shared" in err["message"] and "openai/kimi-shared" in err["message"]


def test_aliases_and_compatible_provider_from_config(make_gateway, upstream, tmp_path):
    config = tmp_path / "gw.toml"
    config.write_text(f'''
[aliases]
fast = "local/llama-3/8b"

[[providers]]
name = "local"
type = "openai-compatible"
base_url = "{upstream.base_url}"
api_key_env = "LOCAL_KEY"
models = ["llama-3/8b"]
context_windows = {{ "llama-3/8b" = 8192 }}
''')
    gateway = make_gateway({"LOCAL_KEY": "sk-local"}, config=config)
    reply = sdk(gateway).chat.completions.create(model="fast", messages=HELLO)
    assert reply.choices[0].message.content == "echo: hi"
    sent = upstream.chat_requests[-1]
    assert sent.json["model"] == "llama-3/8b"
    assert sent.headers["authorization"] == "Bearer sk-local"
    listed = {m.id: m.model_extra.get("context_window") for m in sdk(gateway).models.list()}
    assert listed["local/llama-3/8b"] == 8192


def test_healthz_and_readyz(gateway, make_gateway):
    assert httpx2.get(gateway.url + "/healthz").json() == {"status": "ok"}
    assert httpx2.get(gateway.url + "/readyz").status_code == 200
    none = make_gateway({"GATEWAY_DISABLE_OPENAI_PROVIDER": "yes"})
    r = httpx2.get(none.url + "/readyz")
    assert r.status_code == 503 and "no provider is enabled" in r.text
