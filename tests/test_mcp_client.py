"""The agents' MCP tool source (`McpToolSource`) against a real external MCP server subprocess."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from gateway.mcp_upstream.servers import McpServers
from gateway.mcp_upstream.tool_source import McpToolSource, function_name
from gateway.settings import McpServerConfig
from tests.mcp_test_server import McpTestServerProcess, stdio_command

SHORT = 0.5  # seconds; only the `hang` tool ever waits for it


@pytest.fixture(scope="module")
def http_server() -> Iterator[McpTestServerProcess]:
    with McpTestServerProcess(require_header="X-Token=s3cret") as server:
        yield server


@pytest.fixture
async def toolbox(http_server: McpTestServerProcess) -> AsyncIterator[McpToolSource]:
    command, args = stdio_command()
    servers = McpServers(
        [
            McpServerConfig(name="local", command=command, args=args, timeout=SHORT),
            McpServerConfig(
                name="remote", url=http_server.url, headers={"X-Token": "s3cret"}, timeout=SHORT
            ),
            McpServerConfig(name="nokey", url=http_server.url, timeout=SHORT),
            McpServerConfig(name="down", url="http://127.0.0.1:9/mcp", timeout=SHORT),
        ]
    )
    yield McpToolSource(servers)
    await servers.close()


async def test_tools_offered_as_openai_functions(toolbox):
    functions = await toolbox.functions(["local", "remote", "nokey", "down", "unknown"])
    names = [f["function"]["name"] for f in functions]
    expected = ["media", "weather", "grow", "echo", "hang", "fail", "dotted_name", "crash"]
    assert names == [f"local__{t}" for t in expected] + [f"remote__{t}" for t in expected]
    echo = functions[3]["function"]
    assert echo["description"] == "Return the text, prefixed with 'echoed: '."
    assert echo["parameters"]["required"] == ["text"]
    assert functions[3]["type"] == "function"


@pytest.mark.parametrize("server", ["local", "remote"])
async def test_works_hangs_fails(toolbox, server):
    assert await toolbox.call_function(f"{server}__echo", '{"text": "hi"}') == "echoed: hi"
    hung = await toolbox.call_function(f"{server}__hang", "{}")
    assert hung == f"Error: MCP tool '{server}__hang' timed out after {SHORT:g} s"
    failed = await toolbox.call_function(f"{server}__fail", {"reason": "disk full"})
    assert failed.startswith(f"Error: MCP tool '{server}__fail' failed:")
    assert "disk full" in failed
    # The connection outlives a timeout and an error result.
    assert await toolbox.call(server, "echo", {"text": "again"}) == "echoed: again"


async def test_unreachable_servers_are_error_results(toolbox):
    down = await toolbox.call_function("down__echo", {"text": "x"})
    assert down.startswith("Error: MCP server 'down' is unavailable:")
    nokey = await toolbox.call("nokey", "echo", {"text": "x"})
    assert nokey.startswith("Error: MCP server 'nokey' is unavailable:")
    assert await toolbox.call("ghost", "echo", {}) == (
        "Error: no MCP server named 'ghost' is configured"
    )
    assert await toolbox.call_function("nothing", {}) == "Error: no MCP tool named 'nothing'"


async def test_bad_arguments_and_names(toolbox):
    await toolbox.functions(["local"])
    # `dotted.name` is offered as `local__dotted_name` and still reaches the right tool.
    assert await toolbox.call_function("local__dotted_name", {}) == "dotted ok"
    bad_json = await toolbox.call_function("local__echo", "{not json")
    assert bad_json.startswith("Error: the arguments of 'local__echo' are not valid JSON")
    wrong_type = await toolbox.call_function("local__echo", {"text": 5})
    assert wrong_type.startswith("Error: MCP tool 'local__echo' failed:")
    unknown = await toolbox.call_function("local__nosuch", {})
    assert unknown.startswith("Error: MCP tool 'local__nosuch' failed:")


async def test_reconnects_after_the_server_dies(toolbox):
    crashed = await toolbox.call_function("local__crash", {})
    assert crashed.startswith("Error: MCP tool 'local__crash' failed:")
    assert await toolbox.call_function("local__echo", {"text": "back"}) == "echoed: back"


def test_function_names_are_valid_and_unique():
    assert function_name("srv", "a.b/c") == "srv__a_b_c"
    long = function_name("srv", "x" * 100)
    assert len(long) == 64
    taken = {long}
    second = function_name("srv", "x" * 100, taken)
    assert second != long and len(second) == 64 and second.endswith("_2")
