"""The one function that splits a model handle."""

from __future__ import annotations


def parse_handle(handle: str) -> tuple[str | None, str]:
    """`provider/model` → (provider, model), split on the first `/` only.

    A handle without `/` is a bare model id: (None, id). The model part may itself
    contain `/` (e.g. `together/meta-llama/Llama-3-70b`).
    """
    provider, sep, model = handle.partition("/")
    if not sep:
        return None, handle
    return provider, model
