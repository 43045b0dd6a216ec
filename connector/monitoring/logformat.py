"""Log line formats: plain text (the default) or one JSON object per record, for log collectors.

Both escape control characters in the message and the traceback (``printable``): a logged
address or reply is a stranger's text, and an ``ESC ] 0 ; ... BEL`` or a ``CR LF`` in it must
neither act on the terminal that shows the log nor forge a log line.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from connector.domain.safe_text import printable

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LIBRARY_LOGGERS = ("alembic", "apscheduler")
"""Libraries that narrate at INFO what the service's own lines already say (migrations, job table, each run)."""


def _lines(text: str) -> str:
    """A traceback keeps its line breaks; anything else in it is escaped."""
    return "\n".join(printable(line) for line in text.split("\n"))


class TextFormatter(logging.Formatter):
    """``logging.Formatter`` with the message, the traceback and the stack escaped."""

    def __init__(self, fmt: str | None = TEXT_FORMAT, datefmt: str | None = None) -> None:
        super().__init__(fmt, datefmt)

    def formatMessage(self, record: logging.LogRecord) -> str:
        return super().formatMessage(_escaped(record))

    def formatException(self, ei: logging._SysExcInfoType) -> str:
        return _lines(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _lines(super().formatStack(stack_info))


def _escaped(record: logging.LogRecord) -> logging.LogRecord:
    """A copy of ``record`` whose ``message`` is escaped (other handlers still see the original)."""
    message = printable(record.message)
    if message == record.message:
        return record
    copy = logging.makeLogRecord(record.__dict__)
    copy.message = message
    return copy


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message"}`` plus ``exception`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": printable(record.getMessage()),
        }
        if record.exc_info:
            data["exception"] = _lines(self.formatException(record.exc_info))
        return json.dumps(data, ensure_ascii=False)


def use_format(log_format: str, root: logging.Logger | None = None) -> None:
    """Give the handlers the CLI set up the ``json`` or the escaping ``text`` formatter.

    Only handlers with a plain ``logging.Formatter`` (or none) are switched: others (a test
    runner's, a collector's) chose theirs.
    """
    for handler in (root or logging.getLogger()).handlers:
        current = handler.formatter
        if current is not None and type(current) not in (logging.Formatter, TextFormatter, JsonFormatter):
            continue
        if log_format == "json":
            handler.setFormatter(JsonFormatter())
        else:
            fmt = current._fmt if current is not None and type(current) is not JsonFormatter else TEXT_FORMAT
            handler.setFormatter(TextFormatter(fmt, current.datefmt if current is not None else None))


def quiet_libraries(verbose: int) -> None:
    """Libraries' INFO chatter (Alembic's migration steps, APScheduler's job table) only with ``-v``.

    Their warnings and errors always show. The service's own lines say what it does.
    """
    level = logging.NOTSET if verbose > 0 else logging.WARNING
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(level)
