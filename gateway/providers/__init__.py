"""Upstream clients: connection, retries and wire-format handling per provider type.

Nothing here knows about HTTP facades, agents or metrics; callers pass a `CallRecord`
to learn what a call cost.
"""
