"""Redis going away mid-run: requests keep flowing (fail open, counted and logged once),
or are refused with 503 (fail closed); limits hold again once Redis is back.

A private redis-server on a free port, stopped and started by the test (never the
machine's shared one).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
import redis

from tests.gateway_server import GatewayServer, free_socket
from tests.promtext import scrape
from tests.tenants.conftest import ADMIN, chat, new_key, sdk


class PrivateRedis:
    def __init__(self, workdir: Path) -> None:
        sock = free_socket()
        self.port = sock.getsockname()[1]
        sock.close()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url)
        try:
            for _ in range(200):
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    time.sleep(0.02)
            raise RuntimeError("redis-server did not start")
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if not shutil.which("redis-server"):
        message = "redis-server is not on PATH; install it with: apt-get install redis-server"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("fail_open", [True, False])
def test_limits_through_a_redis_outage(
    tenant_gateway: Callable[..., GatewayServer],
    private_redis: PrivateRedis,
    clients: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
    fail_open: bool,
) -> None:
    gw = tenant_gateway(
        {"GATEWAY_REDIS_URL": private_redis.url, "GATEWAY_REDIS_FAIL_OPEN": str(fail_open)}
    )
    admin = clients(httpx2.Client(base_url=gw.url, headers={"Authorization": f"Bearer {ADMIN}"}))
    client = clients(sdk(gw.base_url, new_key(admin, "limited", rpm=2)["key"]))
    unlimited = clients(sdk(gw.base_url, new_key(admin, "unlimited")["key"]))
    chat(client)
    chat(client)
    with pytest.raises(openai.RateLimitError):
        chat(client)

    private_redis.stop()
    for _ in range(3):
        if fail_open:
            assert chat(client).choices  # flows, without limits
        else:
            with pytest.raises(openai.InternalServerError) as refused:
                chat(client)
            assert refused.value.status_code == 503
            assert refused.value.code == "limits_unavailable"
    assert chat(unlimited).choices  # a key without limits never needs Redis
    assert scrape(gw.url).sum("gateway_redis_unavailable_total") == 3
    down = [r for r in caplog.records if "Redis is unreachable" in r.getMessage()]
    assert len(down) == 1

    # Back, empty (its buckets were lost): the limit applies again from a full bucket.
    private_redis.start()
    time.sleep(1.1)  # past the pause before Redis is tried again
    chat(client)
    chat(client)
    with pytest.raises(openai.RateLimitError):
        chat(client)
    assert any("Redis answers again" in r.getMessage() for r in caplog.records)
