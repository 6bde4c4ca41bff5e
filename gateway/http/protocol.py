"""uvicorn's httptools protocol with a read timeout for request heads and bodies.

uvicorn times out idle keep-alive connections only: a client that opens a connection
and sends nothing, half a request head, or half a body is kept as long as it likes
(75 s and more were measured, 3,000 such connections at once). This protocol drops
such a connection once `GATEWAY_REQUEST_READ_TIMEOUT` seconds pass between the start of
a request (or of the connection) and its last body byte, answering 408
`request_timeout` when no response has started.

A request that arrives whole in one read, as nearly all do, never arms a timer. The
timeout comes from the lifespan state (`READ_TIMEOUT_STATE`, set by `create_app`) so
it follows the same settings as everything else, in every worker.
`gateway serve` runs uvicorn with `http="gateway.http.protocol:TimedHttpToolsProtocol"`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway import errors

READ_TIMEOUT_STATE = "gateway.request_read_timeout"
DEFAULT_READ_TIMEOUT = 30.0


class TimedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_timeout = float(self.app_state.get(READ_TIMEOUT_STATE, DEFAULT_READ_TIMEOUT))
        self._read_timer: asyncio.TimerHandle | None = None
        # Between a request's first byte and its last body byte.
        self._reading = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # A connection that never sends a whole request head is dropped too.
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._reading:
            self._arm()
        else:
            self._disarm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading = True

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading = False
        self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        # Only the first arming counts: the whole request gets one deadline, however
        # many small reads a slow client spreads it over.
        if self._read_timer is None:
            self._read_timer = self.loop.call_later(self._read_timeout, self._timed_out)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or not cycle.response_started:
            self.transport.write(_timeout_response(self._read_timeout))
        if cycle is not None:
            # The app waiting for the body hears of a disconnect, and what it may
            # still send goes nowhere.
            cycle.disconnected = True
            cycle.message_event.set()
        self.logger.info(
            "dropped a connection whose request did not arrive within %g s", self._read_timeout
        )
        self.transport.close()


def _timeout_response(timeout: float) -> bytes:
    body = errors.RequestTimeout(
        f"the request did not arrive within {timeout:g} s (GATEWAY_REQUEST_READ_TIMEOUT)"
    ).json_bytes()
    head = (
        b"HTTP/1.1 408 Request Timeout\r\n"
        b"content-type: application/json\r\n"
        b"connection: close\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    return head + body
