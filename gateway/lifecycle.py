"""Graceful shutdown: the drain that every request, stream and agent turn can race against.

On SIGTERM (or SIGINT) the process starts draining: new requests are refused with 503
`shutting_down`, and what is in flight gets `GATEWAY_SHUTDOWN_GRACE` seconds. At that
deadline each part of the gateway ends what it still runs in its own protocol's way.

The hook for facades is `Drain.deadline()`, an async context manager that raises
`errors.ShuttingDown` inside its block when the deadline passes (it cancels the block,
as `asyncio.timeout` does, and turns that into our error). Wrap the part of a request
that waits, and render the error like any other one there:

    try:
        async with drain.deadline():
            async for event in upstream_events:
                await send(frame(event))
    except errors.GatewayError as exc:
        await send(error_frame(exc))  # OpenAI `data: {"error": …}`, Anthropic
                                       # `event: error`, Responses `response.failed`

Before a response has started the same error is an ordinary 503 body. Use one scope
per request, around the code that knows how to render the error: a scope opened inside
another one in the same task does nothing, the outer one decides.

Agent turns run in tasks of their own: `AgentService.close()` waits for them until the
same deadline, then cancels them; a cancelled turn is marked failed with
`shutting_down`, and sending the same input (or `Idempotency-Key`) resumes it.

The drain learns of the signal by chaining onto the server's own handler
(`on_signals`), so it works under `gateway serve`, plain `uvicorn`, and each worker of
a multi-worker server; uvicorn itself still closes the listening socket and waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType, TracebackType
from typing import Any

from gateway import errors

log = logging.getLogger("gateway")

SIGNALS = (signal.SIGTERM, signal.SIGINT)

# The scope already guarding this task's request, if any (scopes do not nest).
_ACTIVE: contextvars.ContextVar[bool] = contextvars.ContextVar("gateway_drain", default=False)


class Drain:
    """Whether the process is shutting down, and when in-flight work must end."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.draining = False
        # `loop.time()` of the deadline once draining; None before.
        self._when: float | None = None
        self._started_at: float | None = None
        self._scopes: set[DeadlineScope] = set()

    def begin(self) -> None:
        """Start draining (idempotent): the deadline is `grace` seconds from now."""
        if self.draining:
            return
        self.draining = True
        self._started_at = time.monotonic()
        loop = asyncio.get_running_loop()
        self._when = loop.time() + self.grace
        log.info(
            "shutting down: refusing new requests, %d in flight get %.0f s",
            len(self._scopes),
            self.grace,
        )
        for scope in self._scopes:
            scope.arm(loop, self._when)

    @property
    def expired(self) -> bool:
        return self._when is not None and asyncio.get_running_loop().time() >= self._when

    def remaining(self) -> float:
        """Seconds left until the deadline (the whole grace before draining starts)."""
        if self._when is None:
            return self.grace
        return max(0.0, self._when - asyncio.get_running_loop().time())

    def deadline(self) -> DeadlineScope:
        """Run the block until the drain's deadline; then raise `errors.ShuttingDown`."""
        return DeadlineScope(self)


class DeadlineScope:
    """`async with drain.deadline():` (a class, not a generator: it is on the hot path).

    Until the drain begins a scope is only an entry in the drain's set: no timer, no
    `asyncio.timeout` (which cost about a tenth of a pass-through request). `begin()`
    arms a timer on each open scope; when it fires, the scope cancels its task and turns
    that cancellation into `ShuttingDown` on the way out, as `asyncio.timeout` does.
    """

    __slots__ = ("_drain", "_fired", "_handle", "_task", "_token")

    def __init__(self, drain: Drain) -> None:
        self._drain = drain
        self._task: asyncio.Task[Any] | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._fired = False
        self._token: contextvars.Token[bool] | None = None

    async def __aenter__(self) -> None:
        if _ACTIVE.get():
            return  # an outer scope guards this task already
        self._token = _ACTIVE.set(True)
        self._task = asyncio.current_task()
        drain = self._drain
        drain._scopes.add(self)
        if drain._when is not None:  # opened while draining: the deadline is set already
            self.arm(asyncio.get_running_loop(), drain._when)

    def arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._handle is None:
            self._handle = loop.call_at(when, self._fire)

    def _fire(self) -> None:
        if self._task is not None and not self._task.done():
            self._fired = True
            self._task.cancel()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is None:
            return
        self._drain._scopes.discard(self)
        _ACTIVE.reset(self._token)
        if self._handle is not None:
            self._handle.cancel()
        if self._fired and exc_type is asyncio.CancelledError:
            assert self._task is not None
            # Ours alone (no one else cancelled the task too): it becomes our error.
            if self._task.uncancel() == 0:
                raise shutting_down(self._drain.grace) from None


def shutting_down(grace: float) -> errors.ShuttingDown:
    return errors.ShuttingDown(
        f"the gateway is shutting down; the request was still running after the "
        f"{grace:g} s grace period (GATEWAY_SHUTDOWN_GRACE); retry it"
    )


def refusal() -> errors.ShuttingDown:
    return errors.ShuttingDown("the gateway is shutting down and takes no new requests; retry")


@contextlib.contextmanager
def on_signals(callback: Callable[[], None]) -> Iterator[None]:
    """Call `callback` in the event loop when SIGTERM or SIGINT arrives, then chain on.

    The server's own handler (uvicorn's) keeps running after ours, so it still stops
    accepting and waits for connections. Off the main thread (tests that run the
    server in a thread) signals cannot be caught and nothing is installed.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {}

    def handler(sig: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(callback)
        chained = previous.get(sig)
        if callable(chained):
            chained(sig, frame)
        elif chained == signal.SIG_DFL:
            # Nobody else listens: do what the signal would have done without us.
            signal.signal(sig, signal.SIG_DFL)
            signal.raise_signal(sig)

    for signum in SIGNALS:
        previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for number, old in previous.items():
            # Only undo our own handler; the server may have restored its originals.
            if signal.getsignal(number) is handler:
                signal.signal(number, old)
