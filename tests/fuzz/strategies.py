"""Hypothesis strategies for hostile request parts: JSON of every type, huge integers, NULs.

`obj(...)` builds a JSON object from per-field strategies and then spoils some of its
fields (a random type, an edge value, or the field left out) at a rate drawn once per
object, so most bodies are nearly valid and reach deep into the gateway while some are
thoroughly wrong. Bodies are serialized with the standard library (lone surrogates and
`NaN` included), or are raw bytes (truncated JSON, deep nesting, invalid UTF-8).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

# Column and type bounds that code meets on the way to a database: int32, int64, uint64, the
# largest integer a double holds exactly, and past all of them.
EDGE_INTS = [0, -1, 1, 2**31 - 1, 2**31, -(2**31) - 1, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**30]
EDGE_TEXTS = ["", " ", "\x00", "a\x00b", "\u202e", "\ufeff", "💥" * 3, "a" * 70_000, "null"]

_chars = st.characters(codec=None, exclude_categories=())  # surrogates included
text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=_chars, max_size=12),
    st.sampled_from(EDGE_TEXTS),
    st.text(max_size=8).map(lambda s: s + "\x00"),
)
integers = st.one_of(
    st.integers(), st.sampled_from(EDGE_INTS), st.sampled_from(EDGE_INTS).map(lambda i: -i)
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    integers,
    st.floats(allow_nan=True, allow_infinity=True),
    text,
)
# Any JSON value, nested a few levels.
anything: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4)),
    max_leaves=12,
)


def deep(depth: int) -> str:
    """A value nested `depth` levels, as JSON text (too deep for a recursive encoder)."""
    return '{"a":' * depth + "1" + "}" * depth if depth % 2 else "[" * depth + "]" * depth


class Raw(str):
    """JSON text to splice into a body as is."""


def dumps(value: Any) -> bytes:
    """JSON with lone surrogates escaped, NaN/Infinity as Python writes them, `Raw` spliced."""
    raws: dict[str, str] = {}

    def swap(v: Any) -> Any:
        if isinstance(v, Raw):
            marker = f"__raw_{len(raws)}__"
            raws[marker] = str(v)
            return marker
        if isinstance(v, dict):
            return {k: swap(x) for k, x in v.items()}
        if isinstance(v, list):
            return [swap(x) for x in v]
        return v

    out = json.dumps(swap(value), ensure_ascii=True)
    for marker, raw in raws.items():
        out = out.replace(f'"{marker}"', raw)
    return out.encode()


# What a spoiled field gets: any JSON, or a value at an edge some layer has.
hostile = st.one_of(
    anything,
    anything,
    st.sampled_from(EDGE_INTS),
    st.sampled_from(EDGE_INTS).map(lambda i: -i),
    st.sampled_from(EDGE_TEXTS),
    st.sampled_from([100, 300, 301, 2000]).map(lambda d: Raw(deep(d))),
)
# Text a client may well send: short, any unicode, sometimes with a NUL.
words = st.one_of(st.text(max_size=30), st.sampled_from(["hello", "a\x00b", "💥"]))


@st.composite
def obj(draw: st.DrawFn, fields: dict[str, st.SearchStrategy[Any]]) -> dict[str, Any]:
    """An object with `fields`: clean, one field spoiled, or many; maybe an unknown field."""
    names = list(fields)
    mode = draw(st.sampled_from(["clean", "one", "one", "one", "some", "most"]))
    if mode == "one" and names:
        spoiled = {draw(st.sampled_from(names))}
    elif mode in ("some", "most"):
        rate = 25 if mode == "some" else 75
        spoiled = {n for n in names if draw(st.integers(0, 99)) < rate}
    else:
        spoiled = set()
    out: dict[str, Any] = {}
    for name, valid in fields.items():
        if name not in spoiled:
            out[name] = draw(valid)
        elif draw(st.integers(0, 3)) > 0:  # else the field is left out
            out[name] = draw(hostile)
    if draw(st.integers(0, 9)) == 0:
        out[draw(text)] = draw(anything)
    return out


def body(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """Request bodies: mostly `valid` (spoiled as `obj` does), sometimes anything at all."""
    return st.one_of(
        valid.map(dumps),
        valid.map(dumps),
        valid.map(dumps),
        valid.map(dumps),
        hostile.map(dumps),
        st.binary(max_size=64),
        valid.map(dumps).flatmap(lambda b: st.integers(0, len(b)).map(lambda n: b[:n])),
    )


def segment(*likely: str) -> st.SearchStrategy[str]:
    """A path segment, percent-encoded: a likely value, text, or arbitrary bytes."""
    return st.one_of(
        st.sampled_from(likely) if likely else st.nothing(),
        # Long, but short of the 64 KiB an HTTP client lets a URL have.
        text.filter(bool).map(lambda s: quote(s[:3000].encode("utf-8", "surrogatepass"), safe="")),
        st.binary(min_size=1, max_size=12).map(lambda b: quote(b, safe="")),
        st.sampled_from(EDGE_INTS).map(str),
    )


def query_value() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(EDGE_INTS).map(str),
        st.integers().map(str),
        st.sampled_from(["-1", "1e3", " 5", "0x10", "٣", "1_000", "\x00", "5\x00"]),
        st.text(max_size=12),
        st.just("9" * 3000),
    )


def query(*names: str) -> st.SearchStrategy[dict[str, str]]:
    return st.dictionaries(st.sampled_from([*names, "x"]), query_value(), max_size=len(names) + 1)


def header_safe(raw: bytes) -> bytes:
    """The bytes of `raw` an HTTP client may send in a header value."""
    return bytes(c for c in raw if c == 9 or 32 <= c <= 126 or c >= 128).strip()


def header_value() -> st.SearchStrategy[bytes]:
    """Header bytes an HTTP client can send: visible ASCII, space, tab and obs-text."""
    return st.one_of(
        st.text(max_size=20).map(lambda s: s.encode("utf-8", "surrogatepass")),
        st.binary(max_size=20),
        st.just(b"x" * 300),
    ).map(header_safe)
