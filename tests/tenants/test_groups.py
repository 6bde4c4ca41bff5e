"""Model groups end to end: fallbacks before the first byte, rests after failures in a
row (shared through Redis), X-Gateway-Target, /readyz, /v1/models, metrics."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from tests.fake_upstream import FakeUpstream, Reply
from tests.gateway_server import GatewayServer
from tests.promtext import scrape
from tests.tenants.conftest import sdk

CONFIG = """
[[providers]]
name = "openai"
type = "openai"
max_attempts = 1

[models.fast]
targets = ["openai/gpt-4o-mini", "openai/gpt-4o"]
failures = 2
cooldown_s = 60

[models.streams]
targets = ["openai/gpt-4o-mini", "openai/gpt-4o"]
"""


@pytest.fixture
def group_config(tmp_path: Path) -> Path:
    path = tmp_path / "groups.toml"
    path.write_text(CONFIG)
    return path


def _ask(client: openai.OpenAI, model: str = "fast") -> str:
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hi"}]
    )
    raw.parse()
    return raw.headers["x-gateway-target"]


def _models_asked(upstream: FakeUpstream) -> list[str]:
    models = [r.json["model"] for r in upstream.chat_requests]
    upstream.reset()
    return models


def test_a_group_falls_back_and_rests_a_failing_target(
    make_gateway: Callable[..., GatewayServer],
    upstream: FakeUpstream,
    group_config: Path,
    limits_env: dict[str, str],
    clients: Callable[..., Any],
) -> None:
    gw = make_gateway(limits_env, config=group_config)
    client = clients(sdk(gw.base_url, "unused"))
    assert "fast" in {m.id for m in client.models.list()}

    upstream.script(Reply.error(503))
    assert _ask(client) == "openai/gpt-4o"
    assert _models_asked(upstream) == ["gpt-4o-mini", "gpt-4o"]
    upstream.script(Reply.error(429, retry_after=0))
    assert _ask(client) == "openai/gpt-4o"
    assert _models_asked(upstream) == ["gpt-4o-mini", "gpt-4o"]
    # Two failures in a row: gpt-4o-mini rests, and is tried last meanwhile.
    assert _ask(client) == "openai/gpt-4o"
    assert _models_asked(upstream) == ["gpt-4o"]
    ready = httpx2.get(gw.url + "/readyz").json()
    assert ready["cooldowns"] == {"fast": ["openai/gpt-4o-mini"]}

    # A failure another target would not fix is not retried elsewhere.
    upstream.script(Reply.error(400, code="invalid_value"))
    with pytest.raises(openai.BadRequestError):
        _ask(client)
    assert _models_asked(upstream) == ["gpt-4o"]

    # A stream falls back too, before its first byte.
    upstream.script(Reply.error(502))
    stream = client.chat.completions.with_raw_response.create(
        model="streams", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    assert stream.headers["x-gateway-target"] == "openai/gpt-4o"
    assert "".join(c.choices[0].delta.content or "" for c in stream.parse() if c.choices)
    # Plain models name their target too.
    assert _ask(client, "openai/gpt-4o-mini") == "openai/gpt-4o-mini"
    assert _models_asked(upstream) == ["gpt-4o-mini", "gpt-4o", "gpt-4o-mini"]

    metrics = scrape(gw.url)
    fallbacks = "gateway_llm_fallbacks_total"
    labels = {"group": "fast", "from_target": "openai/gpt-4o-mini", "to_target": "openai/gpt-4o"}
    assert metrics.sum(fallbacks, **labels) == 2
    assert metrics.sum(fallbacks, group="streams") == 1
    cooling = {"group": "fast", "target": "openai/gpt-4o-mini"}
    assert metrics.sum("gateway_target_cooldown", **cooling) == 1

    if limits_env:
        # Another replica on the same Redis skips the resting target as well.
        other = make_gateway(limits_env, config=group_config)
        assert httpx2.get(other.url + "/readyz").json()["cooldowns"] == {
            "fast": ["openai/gpt-4o-mini"]
        }
        assert _ask(clients(sdk(other.base_url, "unused"))) == "openai/gpt-4o"
        assert _models_asked(upstream) == ["gpt-4o"]


def test_every_target_failing_gives_the_last_error(
    make_gateway: Callable[..., GatewayServer],
    upstream: FakeUpstream,
    group_config: Path,
    clients: Callable[..., Any],
) -> None:
    gw = make_gateway(config=group_config)
    upstream.script(Reply.error(503), Reply.error(429, retry_after=3))
    with pytest.raises(openai.RateLimitError) as limited:
        _ask(clients(sdk(gw.base_url, "unused")))
    assert limited.value.code == "upstream_rate_limited"
    assert limited.value.response.headers["retry-after"] == "3"
