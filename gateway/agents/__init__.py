"""Stateful agents: the store, the one agent loop, built-in tools and the agent service.

A service layer: it imports providers, routing and the core (settings, errors), never
a facade. `service.AgentService` is what the HTTP and MCP facades call; `loop.py` is
the only agent loop; `locking.py` holds the one place where SQLite and PostgreSQL
behave differently (serializing turns across processes).
"""
