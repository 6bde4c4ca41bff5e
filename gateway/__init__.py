"""agent-gateway: an OpenAI-compatible and MCP gateway with stateful agents.

Layout: facades (`http/`, `mcp/`) call services (`routing/`, `agents/`), which call
upstream clients (`providers/`), which use the core (`settings`, `errors`, `schemas`).
"""

__version__ = "0.1.0"
