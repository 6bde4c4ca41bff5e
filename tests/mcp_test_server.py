"""An external MCP server for the gateway's MCP client tests, run as a real subprocess.

`python tests/mcp_test_server.py` serves stdio; `--http PORT` serves Streamable HTTP on
127.0.0.1:PORT at `/mcp` (and, with `--require-header NAME=VALUE`, answers 401 to requests
without that header). Tools: `echo` works, `hang` never answers, `fail` is an error result,
`crash` exits the process mid-call.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time

import uvicorn
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send


def build() -> MCPServer:
    server = MCPServer("test-tools", instructions="tools for the gateway's tests")

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

    def __init__(self, require_header: str | None = None) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()  # the child binds it; a rare race shows up as a start failure
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
    uvicorn.run(app, host="127.0.0.1", port=args.http, log_level="warning")


if __name__ == "__main__":
    sys.exit(main())
