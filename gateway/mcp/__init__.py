"""MCP: the facade that serves the gateway's services, and federated upstream servers, as MCP.

- `server.py` builds the `MCPServer` (tools `list_models`, `chat`) over the services
  object; `app.py` mounts it at `/mcp`, `stdio.py` serves it for `gateway mcp`.
- `agent_tools.py` adds `ask_<name>` per agent, `list_agents`, `send_message` and
  `create_agent`, and keeps the `ask_<name>` tools in step with the agents.
- `federation.py` serves the tools, resources and prompts of the `[[mcp_servers]]` marked
  `expose = true` as `<server>__<name>`, proxied on the services' upstream connections
  (`gateway/mcp_upstream/`, which the agents use too).
- `results.py` renders tool results: structured content plus readable text, and gateway
  errors as error results.

This package imports the services; the services never import the facade.
"""
