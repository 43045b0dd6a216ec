"""The log formats a source may name (``sources[].format``): one table, format name -> its decoder.

A format differs from another only by its ``LineDecoder`` (and whether that decoder
also reads whole blocks); ``FileLogSource`` reads the files of every format the same
way. Ingest (``connector.app.build_source``), ``connector source check`` and the
recognition of a wrong ``format`` (``connector.sources.recognition``) all take their
formats from ``FORMATS``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any

from connector.errors import ConfigError
from connector.sources.base import LineDecoder, SourceFormat
from connector.sources.exchange import ExchangeTrackingDecoder
from connector.sources.exim import EximDecoder
from connector.sources.files import FileLogSource
from connector.sources.jsonl import JsonLinesDecoder
from connector.sources.postfix import PostfixDecoder


def _exchange(source: str, _timezone: tzinfo, state: dict[str, Any]) -> LineDecoder:
    return ExchangeTrackingDecoder(source, state)  # tracking logs stamp in UTC: no zone to configure


def _jsonl(source: str, _timezone: tzinfo, _state: dict[str, Any]) -> LineDecoder:
    return JsonLinesDecoder(source)  # every ``at`` carries its zone; one line, one event: no state


FORMATS: dict[str, SourceFormat] = {
    f.name: f
    for f in (
        SourceFormat("postfix", PostfixDecoder, chunk_scanner=True),
        SourceFormat("exim", EximDecoder),
        SourceFormat("exchange", _exchange),
        SourceFormat("jsonl", _jsonl),
    )
}
"""Every format by its name (the names of ``config.sources.LogFormat``)."""


def log_source(
    format_name: str,
    name: str,
    patterns: Sequence[str | Path] | str | Path,
    *,
    timezone: tzinfo = UTC,
    batch_lines: int = 50_000,
    chunk_scan: bool = True,
) -> FileLogSource:
    """The reader of one log stream (``patterns``: the live file and its rotations) in ``format_name``."""
    source_format = FORMATS.get(format_name)
    if source_format is None:
        raise ConfigError([("sources.format", f"unknown log format {format_name!r} (known: {', '.join(FORMATS)})")])
    return FileLogSource(
        name, patterns, source_format, timezone=timezone, batch_lines=batch_lines, chunk_scan=chunk_scan
    )
