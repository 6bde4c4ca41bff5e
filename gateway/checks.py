"""Checks every facade's edge shares: NUL characters, and the integer bounds of the store.

Bad input must be a 400 naming the field, never a 5xx from a layer below that cannot
take it: PostgreSQL refuses NUL in text, and its integer columns stop at int32 and
int64 (SQLite's at int64). The bounds here hold on both databases.
"""

from __future__ import annotations

from typing import Any

from gateway import errors

NUL = "\x00"
# Settings stored in INTEGER columns (int32 on PostgreSQL).
INT32_MAX = 2**31 - 1
# Ids and cursors in BIGINT columns (and SQLite's INTEGER).
INT64_MAX = 2**63 - 1


def nul_path(value: Any) -> str | None:
    """Where in `value` the first string holding a NUL is (`messages[0].content`), or None.

    Object keys count too; the empty string means `value` itself. Iterative, since a
    body may nest as deep as the JSON parser allows (1,024 levels), past Python's stack.
    """
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if NUL in item:
                return path
        elif isinstance(item, dict):
            children = []
            for key, child in item.items():
                where = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and NUL in key:
                    return where
                children.append((child, where))
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{i}]") for i, child in reversed(list(enumerate(item))))
    return None


def reject_nul(value: Any, param: str | None = None) -> None:
    """400 `invalid_value` naming the field when `value` holds a NUL character anywhere."""
    where = nul_path(value)
    if where is None:
        return
    if param:
        where = f"{param}{where}" if where.startswith("[") or not where else f"{param}.{where}"
    raise errors.InvalidRequest(
        f"'{where}' contains a NUL character (\\u0000), which cannot be stored",
        param=where or None,
    )


# Deeper JSON than any real client sends; the standard library's encoder, which the store
# uses for JSON columns, gives up near 1,000 levels.
MAX_DEPTH = 32


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """True when `value` nests objects or arrays more than `limit` levels (iteratively)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, dict | list):
            if level >= limit:
                return True
            stack.extend((child, level + 1) for child in children)
    return False


def content_parts(parts: list[Any], param: str) -> None:
    """A message's content as a list of parts: objects with a string `type`; text is text."""
    for i, part in enumerate(parts):
        where = f"{param}[{i}]"
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise errors.InvalidRequest(
                "each content part must be an object with a string 'type'", param=where
            )
        if part["type"] == "text" and not isinstance(part.get("text"), str):
            raise errors.InvalidRequest("a text part's 'text' must be a string", param=where)
        if too_deep(part):
            raise errors.InvalidRequest(
                f"content part nested deeper than {MAX_DEPTH} levels", param=where
            )
