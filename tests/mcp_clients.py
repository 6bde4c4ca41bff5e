"""How the MCP tests reach the gateway: the `mcp` SDK's client over HTTP or stdio."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from tests.gateway_server import _clean_env

ROOT = Path(__file__).resolve().parent.parent


@contextlib.asynccontextmanager
async def mcp_client(
    url: str, key: str | None = None, mode: str = "auto", **headers: str
) -> AsyncIterator[Client]:
    """A client of the gateway at `url` (`/mcp` is appended), with the key if given."""
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    async with (
        httpx2.AsyncClient(headers=headers) as http,
        Client(streamable_http_client(url + "/mcp", http_client=http), mode=mode) as client,
    ):
        yield client


def gateway_mcp(gateway_env: dict[str, str], gateway_config: Path) -> StdioServerParameters:
    """`python -m gateway mcp` as a desktop client would launch it."""
    env = {**_clean_env(), **gateway_env, "GATEWAY_LOG_LEVEL": "DEBUG"}
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "gateway", "--config", str(gateway_config), "mcp"],
        env=env,
        cwd=str(ROOT),
    )
