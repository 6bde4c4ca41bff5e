"""An external MCP server for the gateway's MCP client tests, run as a real subprocess.

`python tests/mcp_test_server.py` serves stdio; `--http PORT` serves Streamable HTTP on
127.0.0.1:PORT at `/mcp` (and, with `--require-header NAME=VALUE`, answers 401 to requests
without that header). Tools: `echo` works, `hang` never answers, `fail` is an error result,
`crash` exits the process mid-call, `media` answers with every kind of content block,
`weather` with structured content, `grow` adds the tool `grown` and says the list changed.
It also has a resource, a resource template and a prompt.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from typing import Annotated, TypedDict

import uvicorn
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import (
    AudioContent,
    CallToolResult,
    EmbeddedResource,
    ImageContent,
    ResourceLink,
    TextContent,
    TextResourceContents,
    ToolAnnotations,
)
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

# A 1x1 PNG and a few bytes of "audio", base64: content the gateway must pass on unchanged.
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKm"
    "MIQAAAABJRU5ErkJggg=="
)
WAV = "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQAAAAA="


class Weather(TypedDict):
    city: str
    celsius: float


def media_result() -> CallToolResult:
    return CallToolResult(
        content=[
            TextContent(type="text", text="here is everything"),
            ImageContent(type="image", data=PNG, mime_type="image/png"),
            AudioContent(type="audio", data=WAV, mime_type="audio/wav"),
            EmbeddedResource(
                type="resource",
                resource=TextResourceContents(
                    uri="test://notes/today", mime_type="text/plain", text="buy milk"
                ),
            ),
            ResourceLink(
                type="resource_link", uri="test://notes/today", name="today", mime_type="text/plain"
            ),
        ],
        _meta={"test/trace": "abc"},
    )


def build() -> MCPServer:
    server = MCPServer("test-tools", instructions="tools for the gateway's tests")

    @server.tool(
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
        title="Everything at once",
    )
    def media() -> CallToolResult:
        """Answer with text, an image, audio, an embedded resource and a resource link."""
        return media_result()

    @server.tool()
    def weather(city: str) -> Weather:
        """The weather in a city, as structured content."""
        return Weather(city=city, celsius=21.5)

    @server.tool()
    async def grow(ctx: Context) -> str:
        """Add the tool `grown` and tell listeners the tool list changed."""

        def grown() -> str:
            """A tool that appeared at run time."""
            return "grown ok"

        server.add_tool(grown)
        await ctx.notify_tools_changed()
        return "grew"

    @server.resource("test://notes/today", mime_type="text/plain")
    def today() -> str:
        """Today's note."""
        return "buy milk"

    @server.resource("test://notes/{day}")
    def note(day: str) -> str:
        """The note of a day."""
        return f"note of {day}"

    @server.prompt()
    def review(code: Annotated[str, "the code to review"]) -> str:
        """Ask for a code review."""
        return f"Please review: {code}"

    @server.tool()
    def echo(text: str) -> str:
        """Return the text, prefixed with 'echoed: '."""
        return f"echoed: {text}"

    @server.tool()
    async def hang() -> str:
        """Never return."""
        await asyncio.Event().wait()
        return "unreachable"

    @server.tool()
    def fail(reason: str = "it broke") -> str:
        """Always fail with the given reason."""
        raise ToolError(f"failed on purpose: {reason}")

    @server.tool(name="dotted.name")
    def dotted() -> str:
        """A tool whose name is valid in MCP but not as an OpenAI function name."""
        return "dotted ok"

    @server.tool()
    def crash() -> str:
        """Exit the server process while the call is in flight."""
        os._exit(3)

    return server


class _RequireHeader:
    def __init__(self, app: ASGIApp, name: str, value: str) -> None:
        self.app, self.name, self.value = app, name.lower().encode(), value.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and dict(scope["headers"]).get(self.name) != self.value:
            await PlainTextResponse("missing header", status_code=401)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class McpTestServerProcess:
    """This server over Streamable HTTP in a child process: `with ... as srv: srv.url`."""

    def __init__(self, require_header: str | None = None, port: int | None = None) -> None:
        if port is None:
            port = free_port()  # the child binds it; a rare race shows up as a start failure
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        args = [sys.executable, __file__, "--http", str(self.port)]
        if require_header:
            args += ["--require-header", require_header]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def __enter__(self) -> McpTestServerProcess:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"test MCP server exited: {self.proc.stderr.read()!r}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("test MCP server did not start")

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()


def free_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


def stdio_command() -> tuple[str, list[str]]:
    """`command`, `args` of an `[[mcp_servers]]` entry that runs this server over stdio."""
    return sys.executable, [__file__]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int, help="serve Streamable HTTP on this port")
    parser.add_argument("--require-header", help="NAME=VALUE every HTTP request must carry")
    args = parser.parse_args()
    server = build()
    if args.http is None:
        server.run("stdio")
        return
    app: ASGIApp = server.streamable_http_app()
    if args.require_header:
        name, _, value = args.require_header.partition("=")
        app = _RequireHeader(app, name, value)
    # A gateway still connected must not hold up a test's teardown.
    uvicorn.run(
        app, host="127.0.0.1", port=args.http, log_level="warning", timeout_graceful_shutdown=1
    )


if __name__ == "__main__":
    sys.exit(main())
