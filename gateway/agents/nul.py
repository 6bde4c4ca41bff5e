"""NUL characters in the store's statements: replaced by U+FFFD, on both databases alike.

PostgreSQL refuses the NUL character in text; SQLite keeps it. Clients' NULs are refused
at each facade's edge (a 400 naming the field); text from elsewhere (a model's reply, a
tool's result, arguments a model wrote) reaches the store as it came. So every
statement's parameters have their NULs replaced here, and a turn whose upstream
answered with a NUL is stored and answered rather than failing half-written (a 500,
the user's message kept with no answer).

U+FFFD REPLACEMENT CHARACTER is what decoders write for what they cannot represent: it
shows that something was there, where stripping would silently join the words around
it. JSON columns need nothing: their text escapes NUL as `\\u0000`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

NUL = "\x00"
REPLACEMENT = "\ufffd"


def replace_nul_in_parameters(engine: AsyncEngine) -> None:
    event.listen(engine.sync_engine, "before_cursor_execute", _without_nul, retval=True)


def _without_nul(
    conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> tuple[str, Any]:
    if executemany and isinstance(parameters, list):
        return statement, [_clean(p) for p in parameters]
    return statement, _clean(parameters)


def _clean(parameters: Any) -> Any:
    if isinstance(parameters, tuple | list):
        if any(isinstance(v, str) and NUL in v for v in parameters):
            return type(parameters)(_clean_value(v) for v in parameters)
    elif isinstance(parameters, dict):
        if any(isinstance(v, str) and NUL in v for v in parameters.values()):
            return {k: _clean_value(v) for k, v in parameters.items()}
    return parameters


def _clean_value(value: Any) -> Any:
    return value.replace(NUL, REPLACEMENT) if isinstance(value, str) else value
