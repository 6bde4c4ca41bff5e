"""Shared fixtures: a fake upstream and a real gateway in front of it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fake_upstream import FakeUpstream
from tests.gateway_server import GatewayServer


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(models=["gpt-4o-mini", "gpt-4o", "shared-model"]) as fake:
        yield fake


@pytest.fixture
def gateway_env(upstream: FakeUpstream, tmp_path: Path) -> dict[str, str]:
    """OpenAI provider pointed at the fake; Kimi off unless a test turns it on."""
    return {
        "OPENAI_API_KEY": "sk-upstream-secret",
        "OPENAI_BASE_URL": upstream.base_url,
        "GATEWAY_DATA_DIR": str(tmp_path / "data"),
    }


FAST_RETRIES = """
# Fast retries keep the retry tests quick; the delay formula is unit-tested.
[[providers]]
name = "openai"
type = "openai"
retry_base_delay = 0.01

[[providers]]
name = "kimi"
type = "kimi"
retry_base_delay = 0.01
"""


@pytest.fixture
def gateway_config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(FAST_RETRIES)
    return path


@pytest.fixture
def make_gateway(
    gateway_env: dict[str, str], gateway_config: Path
) -> Iterator[Callable[..., GatewayServer]]:
    """Start a gateway with extra env or settings; all are stopped after the test."""
    started: list[GatewayServer] = []

    def make(env: dict[str, str] | None = None, config: Path | None = None, **overrides: Any):
        config = config or gateway_config
        server = GatewayServer({**gateway_env, **(env or {})}, config, **overrides).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def gateway(make_gateway: Callable[..., GatewayServer]) -> GatewayServer:
    return make_gateway()
