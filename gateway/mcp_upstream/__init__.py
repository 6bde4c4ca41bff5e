"""Connections to upstream MCP servers (the `[[mcp_servers]]` of the config file).

A service of its own, used by two callers: the agents, whose models call these servers'
tools (`tool_source.py`), and the MCP facade, which federates the servers marked
`expose = true` at `/mcp` (`gateway/mcp/federation.py`).

- `connection.py`: one server, one long-lived client connection per process, reopened
  with backoff when it breaks; raw MCP results, typed failures.
- `servers.py`: every configured server, started and closed with the services object;
  tells listeners when an upstream's lists change.
- `tool_source.py`: the agents' `ToolSource`: tools as OpenAI functions
  `<server>__<tool>`, results rendered for a model.
"""
