"""The Responses API's service: stored responses and the turn that makes a new one.

`store.py` keeps responses in the agent store's database (SQLite or PostgreSQL), so
`previous_response_id` works on any worker or replica; `service.py` turns a checked
request into a chat-service call (or an agent turn) and stores what came back.
"""
