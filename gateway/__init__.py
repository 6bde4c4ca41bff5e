"""agent-gateway: an OpenAI-, Anthropic- and MCP-compatible gateway with stateful agents.

Layout: facades (`http/`, `mcp/`) call services (`chat/`, `agents/`, `tenants/`,
`routing/`), which call providers (`providers/`: a transport plus a wire format);
pure translators live in `wire/`, and everything uses the core (`settings`, `errors`).
`docs/architecture.md` draws the request paths.
"""

__version__ = "0.1.0"
