"""The dashboard's tenant panels answer with data from a real Prometheus scraping a
gateway whose keys spend, hit their limits and have budgets."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import openai

from tests.fake_upstream import FakeUpstream, Reply
from tests.gateway_server import GatewayServer
from tests.promtext import scrape
from tests.tenants.conftest import ADMIN, chat, new_key, sdk
from tests.test_prometheus import Prometheus, dashboard_queries, metric_names

PRICES = {"openai/gpt-4o-mini": {"input_per_mtok": 100.0, "output_per_mtok": 100.0}}
TENANT_SERIES = (
    "gateway_key_cost_usd_total",
    "gateway_key_tokens_total",
    "gateway_key_limited_total",
    "gateway_key_budget_remaining_usd",
    "gateway_llm_cost_usd_total",
    "gen_ai_client_token_usage_bucket",
    "gen_ai_client_operation_duration_bucket",
    "gateway_llm_fallbacks_total",
    "gateway_target_cooldown",
)
GROUP = """
[[providers]]
name = "openai"
type = "openai"
max_attempts = 1

[models.fast]
targets = ["openai/gpt-4o-mini", "openai/gpt-4o"]
failures = 1
"""


def test_tenant_panels_have_data(
    make_gateway: Callable[..., GatewayServer],
    upstream: FakeUpstream,
    clients: Callable[..., Any],
    tmp_path: Path,
) -> None:
    config = tmp_path / "group.toml"
    config.write_text(GROUP)
    env = {"GATEWAY_ADMIN_KEY": ADMIN, "GATEWAY_PRICES": json.dumps(PRICES)}
    gw = make_gateway(env, config=config)
    admin = clients(httpx2.Client(base_url=gw.url, headers={"Authorization": f"Bearer {ADMIN}"}))
    secret = new_key(admin, "team-a", rpm=3, max_budget_usd=1, budget_period="daily")["key"]
    client = clients(sdk(gw.base_url, secret))
    unlimited = clients(sdk(gw.base_url, ADMIN))

    def drive() -> None:
        for _ in range(4):
            try:
                chat(client)
            except openai.RateLimitError:
                pass
        upstream.script(Reply.error(503))
        chat(unlimited, "fast")  # falls back, and the first target rests

    drive()
    prometheus = Prometheus(tmp_path, f"127.0.0.1:{gw.port}")
    with prometheus:
        for name in TENANT_SERIES:
            prometheus.wait(lambda name=name: bool(prometheus.query(name)["data"]["result"]))
        left = 'gateway_key_budget_remaining_usd{key="team-a"}'
        prometheus.wait(lambda: 0 < prometheus.value(left) < 1)
        drive()
        samples = {
            line.split("{")[0].split()[0]
            for line in scrape(gw.url).text.splitlines()
            if line and not line.startswith("#")
        }
        panels = [
            (title, expr)
            for title, expr in dashboard_queries()
            if metric_names(expr) & set(TENANT_SERIES) and metric_names(expr) <= samples
        ]
        assert len(panels) >= 8
        for title, expr in panels:
            answer = prometheus.query(expr)
            assert answer["status"] == "success", (title, answer)
            assert answer["data"]["result"], f"{title}: no data for {expr}"
