"""The OpenAI-compatible HTTP facade: routes, pure-ASGI middleware, error rendering."""
