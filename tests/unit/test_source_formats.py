"""The table of log formats: every configurable format has a row, each row says truly whether its
decoder scans blocks, and every format is read by the one ``FileLogSource``."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path
from typing import get_args
from zoneinfo import ZoneInfo

import pytest

from connector.config.sources import LogFormat
from connector.errors import ConfigError
from connector.sources.chunk_scan import ChunkScanner
from connector.sources.files import FileLogSource
from connector.sources.formats import FORMATS, log_source
from tests.conftest import DATA


def test_every_configurable_format_has_one_row_under_its_own_name() -> None:
    assert list(FORMATS) == list(get_args(LogFormat))
    assert all(name == source_format.name for name, source_format in FORMATS.items())
    assert [name for name, source_format in FORMATS.items() if source_format.chunk_scanner] == ["postfix"]


@pytest.mark.parametrize("name", list(FORMATS))
def test_a_row_says_whether_its_decoder_scans_blocks(name: str) -> None:
    source_format = FORMATS[name]
    decoder = source_format.decoder("gw", UTC, {})
    assert isinstance(decoder, ChunkScanner) is source_format.chunk_scanner


def test_log_source_builds_the_one_reader_with_the_format_and_its_options(tmp_path: Path) -> None:
    zone = ZoneInfo("Asia/Tokyo")
    source = log_source("exim", "gw", tmp_path / "mainlog*", timezone=zone, batch_lines=7, chunk_scan=False)
    assert type(source) is FileLogSource and source.source_format is FORMATS["exim"]
    assert (source.name, source.format_name, source.timezone, source.batch_lines) == ("gw", "exim", zone, 7)
    assert source.patterns == [str(tmp_path / "mainlog*")] and not source.chunk_scan
    assert source.describe() == f"exim log {tmp_path / 'mainlog*'}"


def test_the_time_zone_reaches_the_decoder() -> None:
    """Exim's ``mainlog-exim-4.96`` was written in Asia/Tokyo without offsets: read as UTC, every
    event lands nine hours later."""
    log = DATA / "exim" / "mainlog-exim-4.96"
    tokyo = [e.at for b in log_source("exim", "gw", log, timezone=ZoneInfo("Asia/Tokyo")).read(None) for e in b.events]
    utc = [e.at for b in log_source("exim", "gw", log).read(None) for e in b.events]
    assert tokyo and len(tokyo) == len(utc)
    assert {(u - t).total_seconds() for t, u in zip(tokyo, utc, strict=True)} == {9 * 3600}


def test_an_unknown_format_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match=r"unknown log format 'qmail' \(known: postfix, exim, exchange, jsonl\)"):
        log_source("qmail", "gw", "/var/log/mail.log")
