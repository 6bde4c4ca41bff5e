"""Slow clients: a request whose head or body does not arrive in time is dropped.

Driven with raw sockets against a `gateway serve` process whose
`GATEWAY_REQUEST_READ_TIMEOUT` is one second; without the timeout these connections
stay open (uvicorn only times out idle keep-alive connections).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from tests.gateway_server import GatewayProcess

# How long the test waits for the gateway to act: far above the 1 s timeout.
PATIENCE = 30


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    env = {
        # Never called: these tests do not get as far as a model.
        "OPENAI_API_KEY": "sk-upstream-secret",
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "GATEWAY_DATA_DIR": str(tmp_path_factory.mktemp("data")),
        "GATEWAY_REQUEST_READ_TIMEOUT": "1",
        "GATEWAY_LOG_LEVEL": "WARNING",
    }
    with GatewayProcess(env) as process:
        yield process


def _connect(gw: GatewayProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=PATIENCE)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the gateway sends until it closes the connection."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def _assert_408(data: bytes) -> None:
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), data
    error = json.loads(body)["error"]
    assert error["code"] == "request_timeout"
    assert "GATEWAY_REQUEST_READ_TIMEOUT" in error["message"]


def test_half_a_request_head_is_dropped(gw: GatewayProcess) -> None:
    with _connect(gw) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nContent-Le")
        _assert_408(_read_until_closed(sock))


def test_half_a_body_is_dropped(gw: GatewayProcess) -> None:
    body = b'{"model": "openai/gpt-4o-mini", "messages": []}'
    with _connect(gw) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n"
            b"Content-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:10]
        )
        _assert_408(_read_until_closed(sock))


def test_a_body_trickled_byte_by_byte_is_dropped_too(gw: GatewayProcess) -> None:
    """Each byte arrives well within the timeout; the whole request does not."""
    body = b'{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}'
    with _connect(gw) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        sock.settimeout(0.3)
        received = b""
        for byte in body:
            try:
                sock.sendall(bytes([byte]))
                received += sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if received:
                break
        sock.settimeout(PATIENCE)
        try:
            received += _read_until_closed(sock)
        except ConnectionResetError:
            pass
    _assert_408(received)


def test_a_connection_that_sends_nothing_is_dropped(gw: GatewayProcess) -> None:
    with _connect(gw) as sock:
        _assert_408(_read_until_closed(sock))


def test_whole_requests_on_a_kept_alive_connection_are_not_cut(gw: GatewayProcess) -> None:
    """The timeout covers a request's arrival, not the pause between two requests."""
    request = b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n"
    with _connect(gw) as sock:
        sock.sendall(request)
        assert _health(sock).startswith(b"HTTP/1.1 200")
        # Longer than the read timeout, shorter than uvicorn's 5 s keep-alive.
        time.sleep(2)
        sock.sendall(request)
        assert _health(sock).startswith(b"HTTP/1.1 200")


def _health(sock: socket.socket) -> bytes:
    """One whole /healthz response (its body is a small JSON object)."""
    data = b""
    while not data.endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data
