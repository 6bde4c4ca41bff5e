"""Wire formats: pure translators between the APIs clients and providers speak.

Everything here is pure (no I/O, no services): each module turns one wire format into
the internal representation of `internal.py` or back, and has its own unit tests.
The internal request is an OpenAI chat completions body (a dict, checked by the
facade that built it); replies and stream events are the typed shapes of `internal.py`.
"""
