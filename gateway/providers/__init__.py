"""Providers: a transport (pooled session, the retry loop, timeouts, the model list) plus
the wire format its upstream speaks (OpenAI chat, passed through, or a translation).

Nothing here knows about facades, agents or metrics; callers pass a `CallRecord` to
learn what a call cost. `registry.py` builds them from settings and the environment.
"""
