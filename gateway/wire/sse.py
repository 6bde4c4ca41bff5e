"""Server-sent events framing: buffer bytes into whole events, read an event's data.

Shared by every stream reader (the pass-through relay and the decoders of each wire
format). Events end with a blank line; CRLF line ends are normalized first.
"""

from __future__ import annotations

DONE = b"data: [DONE]\n\n"


class EventBuffer:
    """Bytes in, whole events out (each still ending in its blank line)."""

    __slots__ = ("_rest",)

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, chunk: bytes) -> bytes:
        """Buffer `chunk`; return the events it completes, b"" when none."""
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n")
        data = self._rest + chunk if self._rest else chunk
        end = data.rfind(b"\n\n")
        if end < 0:
            self._rest = data
            return b""
        self._rest = data[end + 2 :]
        return data[: end + 2]

    def flush(self) -> bytes:
        """What is left when the stream ends, as a whole event (b"" when nothing is)."""
        rest, self._rest = self._rest, b""
        return rest + b"\n\n" if rest.strip() else b""


def events(block: bytes) -> list[bytes]:
    """The events of a block `EventBuffer.feed` returned, without their blank lines."""
    return [event for event in block.split(b"\n\n") if event.strip()]


def data_of(event: bytes) -> bytes | None:
    """The event's data (its `data:` lines joined), None when it has none."""
    if event.startswith(b"data:") and b"\n" not in event:
        return event[5:].lstrip()
    lines = [line[5:].lstrip() for line in event.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None


def name_of(event: bytes) -> str:
    """The event's `event:` name, "" when it has none."""
    for line in event.split(b"\n"):
        if line.startswith(b"event:"):
            return line[6:].strip().decode(errors="replace")
    return ""


def frame(data: bytes) -> bytes:
    return b"data: " + data + b"\n\n"
