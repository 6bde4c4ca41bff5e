"""`/ui`: the web console, static files served by the gateway itself.

The page and its files load without a key; the console then asks for a gateway key
and sends it with every call it makes to the public API (nothing here gives it any
other access). No build step: plain HTML, CSS and JavaScript modules, plus one
vendored file (htm's Preact standalone build, 13 KB, Apache-2.0) in `console/vendor/`.
"""

from __future__ import annotations

from pathlib import Path

from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC = Path(__file__).with_name("console")
PREFIX = "/ui"
# The console talks only to its own origin and runs no inline code.
_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; object-src 'none'; "
        b"base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-cache"),
]


class _Hardened:
    """Adds the console's security headers to every static response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _to_index(_: object) -> Response:
    return RedirectResponse(PREFIX + "/", status_code=308)


def routes() -> list[BaseRoute]:
    files = _Hardened(StaticFiles(directory=STATIC, html=True))
    return [Route(PREFIX, _to_index, methods=["GET", "HEAD"]), Mount(PREFIX, app=files)]


def is_console_path(path: str) -> bool:
    """The console's own files need no key (the API calls it makes do)."""
    return path == PREFIX or path.startswith(PREFIX + "/")
