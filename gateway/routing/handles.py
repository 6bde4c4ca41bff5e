"""The functions that read a model handle: provider and model, or an agent."""

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


AGENT_PREFIX = "agent/"


def agent_name(handle: str) -> str | None:
    """The agent an `agent/<name>` handle names; None for any other handle."""
    return handle[len(AGENT_PREFIX) :] if handle.startswith(AGENT_PREFIX) else None


def agent_handle(name: str) -> str:
    return AGENT_PREFIX + name
