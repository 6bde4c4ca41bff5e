"""MCP: the facade that serves the gateway's services as MCP tools, and the client agents use.

- `server.py` builds the `MCPServer` (tools `list_models`, `chat`, and the agent tools) over
  the services object; `app.py` mounts it at `/mcp`, `gateway mcp` serves it over stdio.
- `results.py` renders tool results: structured content plus readable text, and gateway
  errors as error results.
- `client.py` connects to the `[[mcp_servers]]` of the config file and offers their tools
  to agents as `<server>__<tool>` functions.

This package imports the services; the services never import the facade (`server.py`).
"""
