"""`gateway serve --workers 2`: `/metrics` sums every worker's counts, and only this run's."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import pytest
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from gateway.observability import multiprocess
from gateway.settings import Settings
from tests.gateway_server import GatewayProcess
from tests.promtext import scrape, wait_for

CHAT = "/v1/chat/completions"
BATCH = 16
MAX_REQUESTS = 3200


def drive(url: str, n: int) -> None:
    """`n` chats on fresh connections from several threads, so both workers take some."""
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}

    with httpx2.Client(timeout=10, headers={"Connection": "close"}) as client:

        def one(_: int) -> int:
            return client.post(url + CHAT, json=body).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(one, range(n))) == {200}


def worker_pids(directory: Path) -> set[str]:
    return {p.stem.rsplit("_", 1)[1] for p in directory.glob("counter_*.db")}


def leave_stale_count(directory: Path) -> None:
    """A counter file as an earlier run on this port would have left it."""
    directory.mkdir(parents=True)
    stale = MmapedDict(str(directory / "counter_999999.db"))
    labels = ["method", "route", "status"]
    key = mmap_key(
        "gateway_http_requests", "gateway_http_requests_total", labels, ["POST", CHAT, "200"], ""
    )
    stale.write_value(key, 1000.0, 0.0)
    stale.close()


def test_two_workers_report_the_sum_of_this_run(gateway_env, gateway_config, tmp_path):
    env = {**gateway_env, "GATEWAY_LOG_LEVEL": "warning"}
    gw = GatewayProcess(env, "--workers", "2", "--config", str(gateway_config))
    directory = multiprocess.instance_dir(Settings(data_dir=tmp_path / "data", port=gw.port))
    leave_stale_count(directory)
    with gw:
        sent = 0
        # Which worker accepts a connection is the kernel's choice: go on until both have.
        while len(worker_pids(directory)) < 2 and sent < MAX_REQUESTS:
            drive(gw.url, BATCH)
            sent += BATCH
        assert len(worker_pids(directory)) == 2, "both workers should have served requests"
        # Each worker folds its requests into the shared files within 0.1 s.
        served = "gateway_http_requests_total"
        wait_for(gw.url, lambda m: m.sum(served, route=CHAT, status="200") == sent)
        # Whichever worker answers the scrape, it reports every worker's count, and
        # nothing of the earlier run.
        for _ in range(4):
            m = scrape(gw.url)
            assert m.sum("gateway_http_requests_total", route=CHAT, status="200") == sent
            assert m.sum("gateway_llm_requests_total", outcome="success") == sent
            assert m.sum("gateway_llm_tokens_total", kind="prompt") == 7 * sent
            assert m.sum("gateway_http_requests_in_flight") == 1


def test_prepare_sets_or_clears_the_directory(tmp_path):
    env = {multiprocess.ENV_VAR: "/somewhere/else"}
    assert multiprocess.prepare(Settings(data_dir=tmp_path, workers=1), env) is None
    assert multiprocess.ENV_VAR not in env

    settings = Settings(data_dir=tmp_path, port=18080, workers=3)
    leftover = multiprocess.instance_dir(settings) / "counter_1.db"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"old")
    path = multiprocess.prepare(settings, env)
    assert path is not None and env[multiprocess.ENV_VAR] == str(path)
    assert path.is_dir() and not any(path.iterdir())


def test_unusable_data_dir_is_a_config_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(Exception, match="metrics directory"):
        multiprocess.prepare(Settings(data_dir=blocker, workers=2), {})
