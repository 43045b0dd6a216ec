"""Optional JSON log lines: one object per record, for log collectors."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message"}`` plus ``exception`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def use_format(log_format: str, root: logging.Logger | None = None) -> None:
    """Switch the handlers the CLI set up to ``json`` (or leave ``text`` as it is)."""
    if log_format != "json":
        return
    for handler in (root or logging.getLogger()).handlers:
        handler.setFormatter(JsonFormatter())
