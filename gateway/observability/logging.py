"""Log format and level for the gateway and uvicorn alike, and the one line per request.

Everything goes to stderr through one handler on the root logger: uvicorn's loggers
propagate to it, so a deployment sees one stream in one format (`json`: one object
per line; `text`: a timestamped line with `key=value` fields). The request line is
written by the observability middleware through `AccessLog` (straight to stderr, in
the same shape); it carries ids, timings, token counts and outcomes, never message
content, headers or keys.
"""

from __future__ import annotations

import asyncio
import logging
import logging.config
import sys
import time
from itertools import islice
from typing import Any

import orjson

from gateway.settings import ConfigError, Settings

ACCESS_LOGGER = "gateway.access"
TRACE = 5  # uvicorn's extra level, below DEBUG
_LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": TRACE,
}


def level_name(value: str) -> str:
    """The level as uvicorn spells it (`info`, `warning`, …); ConfigError if unknown."""
    name = value.strip().lower()
    if name not in _LEVELS:
        choices = ", ".join(k for k in _LEVELS if k != "warn")
        raise ConfigError(f"log_level: '{value}' is not a log level; use one of {choices}")
    return "warning" if name == "warn" else name


def logging_config(settings: Settings) -> dict[str, Any]:
    """A `logging.config.dictConfig` dict; uvicorn applies it in every worker process."""
    level = _LEVELS[level_name(settings.log_level)]
    # uvicorn's loggers hand their records to the root handler instead of their own.
    uvicorn = {"level": level, "handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {"()": "gateway.observability.logging.JsonFormatter"},
            "text": {"()": "gateway.observability.logging.TextFormatter"},
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": settings.log_format,
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {name: dict(uvicorn) for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
    }


def configure_logging(settings: Settings) -> None:
    """For entry points that do not go through uvicorn (e.g. MCP over stdio)."""
    logging.addLevelName(TRACE, "TRACE")
    logging.config.dictConfig(logging_config(settings))


class _Timestamps:
    """ISO 8601 UTC with milliseconds; busy servers log many lines within one millisecond."""

    def __init__(self) -> None:
        self._ms = -1
        self._text = ""

    def format(self, created: float) -> str:
        ms = int(created * 1000)
        if ms != self._ms:
            second, fraction = divmod(ms, 1000)
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._text = f"{prefix}.{fraction:03d}Z"
            self._ms = ms
        return self._text


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", …fields}`, one object per line."""

    def __init__(self) -> None:
        super().__init__()
        self._ts = _Timestamps()

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": self._ts.format(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            data.update(fields)
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(data, default=str).decode()


class TextFormatter(logging.Formatter):
    """`<ts> <LEVEL> <logger> <msg> key=value …` for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__()
        self._ts = _Timestamps()

    def format(self, record: logging.LogRecord) -> str:
        ts = self._ts.format(record.created)
        parts = [ts, record.levelname, record.name, record.getMessage()]
        fields = getattr(record, "fields", None)
        if fields:
            parts.extend(f"{key}={_text_value(value)}" for key, value in fields.items())
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _text_value(value: Any) -> str:
    if value is None:
        return "-"
    text = str(value)
    # Quote only what would be ambiguous in a space-separated line.
    return orjson.dumps(text).decode() if (" " in text or "=" in text or not text) else text


class AccessLog:
    """The request lines, written straight to stderr in the configured format, in batches.

    Not through `logging`: a LogRecord, the handler's lock and a formatter call per
    request cost more than all the metrics together. The `gateway.access` logger's
    level still decides whether lines are written, and a line has the shape the
    formatters give every other log line (the first four fields of a record are
    `ts`, `level`, `logger`, `msg`).

    Like nginx's `access_log … buffer= flush=`, lines are held for at most
    `FLUSH_SECONDS` (or `MAX_PENDING` lines) and written together: one write per
    request was the largest single cost of the request line. The services object
    flushes at shutdown.
    """

    FLUSH_SECONDS = 0.1
    MAX_PENDING = 256

    def __init__(self, log_format: str = "json") -> None:
        self._logger = logging.getLogger(ACCESS_LOGGER)
        self._json = log_format == "json"
        self._ts = _Timestamps()
        self._pending: list[str] = []

    def enabled(self) -> bool:
        return self._logger.isEnabledFor(logging.INFO)

    def timestamp(self) -> str:
        return self._ts.format(time.time())

    def write(self, record: dict[str, Any]) -> None:
        if self._json:
            line = orjson.dumps(record, default=str).decode()
        else:
            pairs = " ".join(f"{k}={_text_value(v)}" for k, v in islice(record.items(), 4, None))
            line = f"{record['ts']} INFO {ACCESS_LOGGER} request {pairs}"
        pending = self._pending
        pending.append(line)
        if len(pending) == 1:
            try:
                asyncio.get_running_loop().call_later(self.FLUSH_SECONDS, self.flush)
            except RuntimeError:  # no event loop to wait for
                self.flush()
        elif len(pending) >= self.MAX_PENDING:
            self.flush()

    def flush(self) -> None:
        lines, self._pending = self._pending, []
        if lines:
            lines.append("")
            # Looked up each time, so whoever replaced stderr (a test, a supervisor) gets it.
            sys.stderr.write("\n".join(lines))
            sys.stderr.flush()
