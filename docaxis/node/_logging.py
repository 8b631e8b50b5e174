"""How a node writes its log: one event per line, always timestamped, with the structured
fields the code passes (``code``, ``node``, ``document_id``, ``sha256`` …).

JSON lines when standard error is not a terminal (a service manager, a log shipper);
a readable ``time level event key=value …`` form on a terminal. ``DOCAXIS_LOG_FORMAT``
(``json`` / ``text``) and ``DOCAXIS_LOG_LEVEL`` override both.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
from typing import Any

#: attributes every LogRecord has; anything else on a record came from ``extra``
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message", "asctime", "taskName"}


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields of a record (what the caller passed as ``extra``)."""
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, event, fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name,
            "event": record.getMessage(), **fields(record)}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``2026-11-29 18:30:00.123 WARNING relay.refused code=… node=…``"""

    def format(self, record: logging.LogRecord) -> str:
        when = dt.datetime.fromtimestamp(record.created).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        extra = " ".join(f"{k}={v}" for k, v in fields(record).items())
        line = f"{when} {record.levelname:<7} {record.getMessage()} {extra}".rstrip()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(*, as_json: bool | None = None, level: str | None = None) -> None:
    """Send the ``docaxis`` loggers to standard error in the node's format (idempotent)."""
    chosen = os.environ.get("DOCAXIS_LOG_FORMAT")
    if as_json is None:
        as_json = chosen == "json" if chosen else not sys.stderr.isatty()
    logger = logging.getLogger("docaxis")
    for handler in list(logger.handlers):
        if getattr(handler, "_docaxis", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if as_json else TextFormatter())
    handler._docaxis = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level or os.environ.get("DOCAXIS_LOG_LEVEL", "INFO"))
    logger.propagate = False
