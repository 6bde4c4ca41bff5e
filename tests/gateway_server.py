"""Run the real gateway for end-to-end tests: in a thread, or as a `gateway serve` process.

Both listen on a pre-bound loopback socket (no port races) and are driven over real
HTTP by the official SDKs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx2
import uvicorn

from gateway.app import create_app
from gateway.services import Services
from gateway.settings import Settings, load_settings


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.set_inheritable(True)
    return sock


class GatewayServer:
    """The gateway app on a real uvicorn, in a background thread of this process."""

    def __init__(
        self,
        env: Mapping[str, str],
        config: Path | None = None,
        *,
        tracing: Any = None,
        **overrides: Any,
    ):
        self.env = dict(env)
        self.settings: Settings = _settings_from(self.env, config, overrides)
        # `tracing`: a `Tracing` to use instead of the environment's (tests of spans).
        self.services = Services(self.settings, environ=self.env, tracing=tracing)
        self.app = create_app(self.settings, self.services)
        self._sock = free_socket()
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def start(self) -> GatewayServer:
        config = uvicorn.Config(
            self.app,
            loop="asyncio",
            http="httptools",
            lifespan="on",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("gateway did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
            self._server = None
        self._sock.close()

    def __enter__(self) -> GatewayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _settings_from(
    env: Mapping[str, str], config: Path | None, overrides: dict[str, Any]
) -> Settings:
    # Settings read GATEWAY_* from os.environ; give them the test's environment only.
    saved = {k: v for k, v in os.environ.items() if k.startswith("GATEWAY_")}
    for key in saved:
        del os.environ[key]
    try:
        for key, value in env.items():
            if key.startswith("GATEWAY_"):
                os.environ[key] = value
        return load_settings(config, **overrides)
    finally:
        for key in [k for k in os.environ if k.startswith("GATEWAY_")]:
            del os.environ[key]
        os.environ.update(saved)


class GatewayProcess:
    """`python -m gateway serve` as a child process, for restarts and multi-process tests."""

    def __init__(self, env: Mapping[str, str], *args: str) -> None:
        self._sock = free_socket()
        self.port = self._sock.getsockname()[1]
        self._sock.close()  # the child binds it; a rare race is retried by the caller
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = self.url + "/v1"
        self.env = {**_clean_env(), **env}
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> GatewayProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--port", str(self.port), *self.args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read().decode() if self.proc.stdout else ""
                raise RuntimeError(f"gateway exited with {self.proc.returncode}:\n{out}")
            try:
                if httpx2.get(self.url + "/healthz", timeout=0.5).status_code == 200:
                    return self
            except httpx2.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("gateway process did not become healthy")

    def stop(self) -> str:
        if self.proc is None:
            return ""
        self.proc.terminate()
        try:
            out, _ = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        self.proc = None
        return out.decode(errors="replace")

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _clean_env() -> dict[str, str]:
    drop = ("GATEWAY_", "OPENAI_", "KIMI_", "ANTHROPIC_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}
