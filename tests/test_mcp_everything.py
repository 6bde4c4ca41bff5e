"""The MCP gateway in front of the reference server `@modelcontextprotocol/server-everything`.

The server comes from npm, installed outside the repository (`.ci/run` does it):
`npm install --prefix ~/.cache/agent-gateway-tests @modelcontextprotocol/server-everything`,
or set `GATEWAY_TEST_NODE_MODULES` to a `node_modules` that has it. Without node or the
package these tests are skipped with one line saying so.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.mcp_clients import mcp_client
from tests.mcp_test_server import free_port
from tests.test_mcp_federation import wait_for_tools, wire

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "agent-gateway-tests"
NODE_MODULES = Path(os.environ.get("GATEWAY_TEST_NODE_MODULES", CACHE / "node_modules"))
ENTRY = NODE_MODULES / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(
    NODE is None or not ENTRY.is_file(),
    reason=f"server-everything not installed (needs node and {ENTRY}; see .ci/run)",
)


@pytest.fixture
def everything_http() -> Iterator[str]:
    """server-everything over Streamable HTTP, in a child process."""
    assert NODE is not None
    port = free_port()
    proc = subprocess.Popen(
        [NODE, str(ENTRY), "streamableHttp"],
        env={**os.environ, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("server-everything did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def everything_gateway(make_gateway, everything_http, tmp_path: Path, caplog):
    # Before the start: the child writes to stderr as soon as it runs.
    caplog.set_level(logging.INFO, logger="gateway.mcp_upstream.stderr")
    config = tmp_path / "everything.toml"
    config.write_text(
        f"""
[[mcp_servers]]
name = "every"
command = {json.dumps(NODE)}
args = [{json.dumps(str(ENTRY))}, "stdio"]
expose = true

[[mcp_servers]]
name = "everyhttp"
url = "{everything_http}"
expose = true
"""
    )
    gateway = make_gateway(config=config)
    yield gateway
    gateway.stop()


@contextlib.asynccontextmanager
async def direct() -> AsyncIterator[Client]:
    assert NODE is not None
    params = StdioServerParameters(command=NODE, args=[str(ENTRY), "stdio"])
    with Path(os.devnull).open("w") as quiet:  # noqa: ASYNC230 (opening /dev/null)
        async with Client(stdio_client(params, errlog=quiet)) as client:
            yield client


def blocks(result: Any) -> list[dict[str, Any]]:
    return wire(result)["content"]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_reference_server_through_the_gateway(everything_gateway, mode, caplog):
    async with direct() as upstream:
        originals = {t.name: t for t in (await upstream.list_tools()).tools}
        tiny = await upstream.call_tool("get-tiny-image", {})
        structured = await upstream.call_tool("get-structured-content", {"location": "New York"})
        links = await upstream.call_tool("get-resource-links", {"count": 2})
    async with mcp_client(everything_gateway.url, mode=mode) as client:
        tools = await wait_for_tools(client, "every__echo", "everyhttp__echo")
        for server in ("every", "everyhttp"):
            echo = await client.call_tool(f"{server}__echo", {"message": "hi"})
            assert not echo.is_error and "hi" in echo.content[0].text
        got_tiny = await client.call_tool("every__get-tiny-image", {})
        got_structured = await client.call_tool(
            "everyhttp__get-structured-content", {"location": "New York"}
        )
        got_links = await client.call_tool("every__get-resource-links", {"count": 2})
        prompts = [p.name for p in (await client.list_prompts()).prompts]
        resources = (await client.list_resources()).resources

    # A tool that can only run as a task is not offered; every other one is, unchanged.
    assert originals["simulate-research-query"].execution.task_support == "required"
    for name, original in originals.items():
        listed = tools.get(f"every__{name}")
        if name == "simulate-research-query":
            assert listed is None
            continue
        assert listed is not None, name
        proxied, expected = wire(listed), wire(original)
        proxied.pop("name"), expected.pop("name")
        if mode == "auto":
            # `execution` is a 2025-11-25 field; the SDK leaves it out on 2026-07-28.
            expected.pop("execution", None)
        assert proxied == expected
    assert blocks(got_tiny) == blocks(tiny)
    assert {b["type"] for b in blocks(got_tiny)} >= {"image"}
    assert got_structured.structured_content == structured.structured_content
    assert blocks(got_links) == blocks(links)
    assert {b["type"] for b in blocks(got_links)} >= {"resource_link"}
    assert any(p.startswith("every__") for p in prompts)
    assert any(r.name.startswith("every__") for r in resources)
    # The child's stderr went through our logger, one record per line, naming the server.
    records = caplog.get_records("setup") + caplog.get_records("call")
    stderr = [r for r in records if r.name == "gateway.mcp_upstream.stderr"]
    assert stderr and all(r.fields["mcp_server"] == "every" for r in stderr)  # type: ignore[attr-defined]
