"""A real nginx (Debian's package) as an unprivileged child process, balancing round-robin
over gateway replicas on free ports, with a config and paths of its own."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import httpx2

from tests.gateway_server import free_socket

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

CONFIG = """
daemon off;
master_process on;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    upstream gateway {{
{servers}
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://gateway;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            # Streams go out as they come.
            proxy_buffering off;
            proxy_read_timeout 300s;
            # A replica that is gone: requests not yet sent go to the other one.
            proxy_next_upstream error timeout;
            add_header X-Upstream $upstream_addr always;
        }}
    }}
}}
"""


class Nginx:
    def __init__(self, root: Path, upstream_ports: Sequence[int]) -> None:
        self.root = root
        sock = free_socket()
        self.port = sock.getsockname()[1]
        sock.close()
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = self.url + "/v1"
        servers = "\n".join(
            f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in upstream_ports
        )
        root.mkdir(parents=True, exist_ok=True)
        self.config = root / "nginx.conf"
        self.config.write_text(CONFIG.format(root=root, servers=servers, port=self.port))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Nginx:
        self.proc = subprocess.Popen(
            [NGINX, "-p", str(self.root), "-c", str(self.config), "-e", str(self.root / "e.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (self.root / "e.log").read_text() if (self.root / "e.log").exists() else ""
                raise RuntimeError(f"nginx exited with {self.proc.returncode}: {log}")
            try:
                httpx2.get(self.url + "/healthz", timeout=0.5)
                return self
            except httpx2.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
