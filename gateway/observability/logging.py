"""Log format and level for the gateway and uvicorn alike, and the one line per request.

Everything goes to stderr through one handler on the root logger: uvicorn's loggers
propagate to it, so a deployment sees one stream in one format (`json`: one object
per line; `text`: a timestamped line with `key=value` fields). The request line is
rendered by `AccessLog` and written straight to stderr in batches (see `recorder.py`),
in the same shape; it carries ids, timings, token counts and outcomes, never message
content, headers or keys.
"""

from __future__ import annotations

import logging
import logging.config
import sys
import time
from collections.abc import Sequence
from itertools import islice
from typing import Any

import orjson

from gateway.providers.base import CallRecord
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
    # The gateway writes its own request line; uvicorn's would be a second, poorer one.
    quiet = {"level": logging.WARNING, "handlers": [], "propagate": False}
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
                "formatter": settings.resolved_log_format,
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "uvicorn": uvicorn,
            "uvicorn.error": dict(uvicorn),
            "uvicorn.access": quiet,
            # Alembic reports its plugins and context at every start: only at DEBUG.
            "alembic": {"level": level if level <= logging.DEBUG else logging.WARNING},
            # The MCP client's HTTP library logs every request to an upstream MCP server at
            # INFO; the gateway writes its own line per proxied call instead.
            "httpx2": {"level": max(level, logging.WARNING), "handlers": [], "propagate": True},
        },
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
    """Renders request lines and writes them straight to stderr, many at a time.

    Not through `logging`: a LogRecord, the handler's lock and a formatter call per
    request cost several times what all the metrics do. The `gateway.access` logger's
    level still decides whether lines are written, and a line has the shape the
    formatters give every other log line. `Recorder` batches the lines.
    """

    def __init__(self, log_format: str = "json") -> None:
        self._logger = logging.getLogger(ACCESS_LOGGER)
        self._json = log_format == "json"
        self._ts = _Timestamps()

    def enabled(self) -> bool:
        return self._logger.isEnabledFor(logging.INFO)

    def render(
        self,
        when: float,
        request_id: str | None,
        method: str,
        route: str,
        status: int,
        duration: float,
        calls: Sequence[CallRecord],
    ) -> str:
        """One request's line; no headers, bodies or keys ever reach it."""
        # One dict display with every key: this runs for every request.
        fields: dict[str, Any] = {
            "ts": self._ts.format(when), "level": "info", "logger": ACCESS_LOGGER,
            "msg": "request", "request_id": request_id, "method": method, "route": route,
            "status": status, "duration_ms": int(duration * 1_000_000) / 1000,
        }  # fmt: skip
        if len(calls) == 1:
            call = calls[0]
            fields["provider"] = call.provider
            fields["model"] = call.model
            fields["upstream_ms"] = int(call.upstream_seconds * 1_000_000) / 1000
            fields["prompt_tokens"] = call.prompt_tokens
            fields["completion_tokens"] = call.completion_tokens
            fields["retries"] = call.attempts - 1 if call.attempts > 1 else 0
            fields["outcome"] = call.outcome
            if call.first_token_seconds is not None:
                fields["ttft_ms"] = int(call.first_token_seconds * 1_000_000) / 1000
        elif calls:
            _add_calls(fields, calls)
        if self._json:
            return orjson.dumps(fields, default=str).decode()
        pairs = " ".join(
            f"{key}={_text_value(value)}" for key, value in islice(fields.items(), 4, None)
        )
        return f"{fields['ts']} INFO {ACCESS_LOGGER} request {pairs}"

    def write(self, lines: list[str]) -> None:
        lines.append("")
        # Looked up each time, so whoever replaced stderr (a test, a supervisor) gets it.
        sys.stderr.write("\n".join(lines))
        sys.stderr.flush()


def _add_calls(fields: dict[str, Any], calls: Sequence[CallRecord]) -> None:
    """An agent turn's calls, summed; the last one names provider and model."""
    last = calls[-1]
    fields["provider"] = last.provider
    fields["model"] = last.model
    fields["upstream_ms"] = _ms(sum(c.upstream_seconds for c in calls))
    fields["prompt_tokens"] = sum(c.prompt_tokens for c in calls)
    fields["completion_tokens"] = sum(c.completion_tokens for c in calls)
    fields["retries"] = sum(c.retries for c in calls)
    fields["outcome"] = next((c.outcome for c in calls if c.outcome != "success"), "success")
    fields["calls"] = len(calls)
    if last.first_token_seconds is not None:
        fields["ttft_ms"] = _ms(last.first_token_seconds)


def _ms(seconds: float) -> float:
    # Milliseconds to the microsecond; cheaper than round().
    return int(seconds * 1_000_000) / 1000
