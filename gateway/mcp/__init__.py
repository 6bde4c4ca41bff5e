"""MCP: the facade that serves the gateway's services as MCP tools, and the client agents use.

- `server.py` builds the `MCPServer` (tools `list_models`, `chat`) over the services
  object; `app.py` mounts it at `/mcp`, `stdio.py` serves it for `gateway mcp`.
- `agent_tools.py` adds `ask_<name>` per agent, `list_agents`, `send_message` and
  `create_agent`, and keeps the `ask_<name>` tools in step with the agents.
- `results.py` renders tool results: structured content plus readable text, and gateway
  errors as error results.
- `client.py` connects to the `[[mcp_servers]]` of the config file and offers their tools
  to agents as `<server>__<tool>` functions.

This package imports the services; the services never import the facade (`server.py`).
"""
