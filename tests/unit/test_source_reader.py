"""The file reader's guarantees, whatever the decoder does: every line is counted as events,
foreign or malformed; a decoder that raises anything but ``SkippableError`` costs one bad
line, never the run; no event dated out of bounds gets through; the tail of a stream can
be read for ``connector source check``."""

from __future__ import annotations

import gzip
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from connector.domain.events import DeliveryEvent, DeliveryStatus
from connector.errors import SkippableError
from connector.sources.base import SourceFormat, SourceStats
from connector.sources.files import FileLogSource, LogFile, last_lines, list_files
from connector.sources.formats import log_source
from tests.conftest import utc


class ScriptedDecoder:
    """Each line says what to do: ``ok``, ``foreign``, ``skip``, ``crash:<Exception name>``,
    ``year:<year>`` (an event dated that year), ``recurse`` (RecursionError)."""

    def __init__(self, state: dict[str, Any], fail_state: bool = False) -> None:
        self.fail_state = fail_state
        self.seen = int(state.get("seen", 0))

    def begin_file(self, modified_at: datetime) -> None:
        """Nothing per file."""

    def state(self) -> dict[str, Any]:
        if self.fail_state:
            raise KeyError("broken state")
        return {"seen": self.seen}

    def feed(self, line: str, out: list[DeliveryEvent]) -> bool:
        self.seen += 1
        verb, _, arg = line.partition(":")
        if verb == "foreign":
            return False
        if verb == "skip":
            raise SkippableError("not readable")
        if verb == "crash":
            out.append(event(2026))  # appended before the failure: must not survive it
            raise {"ValueError": ValueError, "IndexError": IndexError, "OverflowError": OverflowError}[arg]("boom")
        if verb == "recurse":
            raise RecursionError("maximum recursion depth exceeded")
        out.append(event(int(arg) if verb == "year" else 2026))
        return True


def event(year: int) -> DeliveryEvent:
    return DeliveryEvent(
        at=datetime(year, 6, 1, tzinfo=utc("2026-01-01T00:00:00").tzinfo),
        host="h",
        queue_id="q",
        message_id=f"m{year}@x.test",
        sender="s@x.test",
        recipient="a@acme.com",
        orig_recipient=None,
        relay=None,
        dsn="2.0.0",
        status=DeliveryStatus.SENT,
        reply="250 ok",
        rcpt_stage=False,
    )


def scripted(path: Path, batch: int = 10, fail_state: bool = False) -> FileLogSource:
    scripted_format = SourceFormat("scripted", lambda _source, _zone, state: ScriptedDecoder(state, fail_state))
    return FileLogSource("scripted", path, scripted_format, batch_lines=batch)


def read(source: FileLogSource, checkpoint: Any = None) -> tuple[SourceStats, list[DeliveryEvent], Any]:
    total = SourceStats()
    events: list[DeliveryEvent] = []
    checkpoint_after = None
    for batch in source.read(checkpoint):
        events.extend(batch.events)
        checkpoint_after = batch.checkpoint
        total.lines_read += batch.stats.lines_read
        total.bad_lines += batch.stats.bad_lines
        total.foreign_lines += batch.stats.foreign_lines
        total.bad_line_examples.extend(batch.stats.bad_line_examples)
        if batch.stats.restarted:
            total.note(batch.stats.restarted)
    return total, events, checkpoint_after


def test_a_decoder_that_raises_costs_one_bad_line_per_line_and_one_warning_per_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = tmp_path / "x.log"
    lines = ["ok", "crash:ValueError", "ok", "recurse", "foreign", "crash:IndexError", "skip", *["ok"] * 20]
    log.write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING, logger="connector.sources.files"):
        stats, events, checkpoint = read(scripted(log, batch=10))
    assert stats.lines_read == len(lines)
    assert (stats.bad_lines, stats.foreign_lines, len(events)) == (4, 1, 22)
    assert [b.error for b in stats.bad_line_examples] == [
        "decoder error ValueError: boom",
        "decoder error RecursionError: maximum recursion depth exceeded",
        "decoder error IndexError: boom",
        "not readable",
    ]
    assert [b.line_no for b in stats.bad_line_examples] == [2, 4, 6, 7]
    assert all(e.at.year == 2026 for e in events)  # the event appended before the crash is gone
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "ValueError" in warnings[0].getMessage()
    assert "a@acme.com" not in warnings[0].getMessage()  # addresses only at DEBUG
    # The next run goes on from the checkpoint, and warns again (once) if it happens again.
    with log.open("a") as handle:
        handle.write("crash:OverflowError\ncrash:ValueError\nok\n")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="connector.sources.files"):
        stats, events, _ = read(scripted(log), checkpoint)
    assert (stats.lines_read, stats.bad_lines, len(events)) == (3, 2, 1)
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_events_dated_out_of_bounds_make_their_line_malformed(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("year:1\nyear:9999\nyear:1969\nyear:1970\nyear:2199\nyear:2200\n")
    stats, events, _ = read(scripted(log))
    assert sorted(e.at.year for e in events) == [1970, 2199]
    assert stats.bad_lines == 4
    assert stats.bad_line_examples[0].error.startswith("time out of range: 0001-06-01")


def test_a_decoder_state_that_cannot_be_saved_starts_afresh(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = tmp_path / "x.log"
    log.write_text("ok\nok\n")
    with caplog.at_level(logging.WARNING, logger="connector.sources.files"):
        stats, events, checkpoint = read(scripted(log, fail_state=True))
    assert len(events) == 2 and checkpoint.parser_state["decoder"] == {}
    assert "decoder state dropped after KeyError" in (stats.restarted or "")
    assert any("could not be saved" in r.getMessage() for r in caplog.records)


def test_foreign_lines_are_counted_apart_from_malformed_ones(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    good = '{"at": "2026-11-27T10:00:00Z", "recipient": "a@acme.com", "status": "sent"}'
    log.write_text(f"{good}\n\n   \n{good}\nnot json\n")
    stats, events, _ = read(log_source("jsonl", "js", log))
    assert (stats.lines_read, len(events), stats.foreign_lines, stats.bad_lines) == (5, 2, 2, 1)
    assert stats.ignored_lines == stats.foreign_lines  # the former name still answers


# --- the tail of a stream ---------------------------------------------------------------------


def logfile(path: Path) -> LogFile:
    [file] = list_files([str(path)], SourceStats())
    return file


@pytest.mark.parametrize("count", [1, 3, 5, 7, 100])
def test_last_lines_of_a_plain_file_leave_out_the_line_being_written(tmp_path: Path, count: int) -> None:
    path = tmp_path / "mail.log"
    path.write_bytes(b"l1\nl2\r\nl3\n\nl5\nstill being writ")
    expected = [b"l1", b"l2\r", b"l3", b"", b"l5"]
    assert last_lines(logfile(path), count) == expected[-count:]


def test_last_lines_reach_back_over_many_blocks_and_cut_nothing(tmp_path: Path) -> None:
    path = tmp_path / "mail.log"
    lines = [f"line {i} " * (i % 50) for i in range(30_000)]  # ~3.5 MB: several backward reads
    path.write_text("\n".join(lines) + "\n")
    for count in (1, 999, 20_000):
        assert last_lines(logfile(path), count) == [line.encode() for line in lines[-count:]]


def test_last_lines_of_a_gz_rotation(tmp_path: Path) -> None:
    path = tmp_path / "mail.log.2.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(b"".join(b"g%d\n" % i for i in range(5000)) + b"last without newline")
    assert last_lines(logfile(path), 3) == [b"g4998", b"g4999", b"last without newline"]


def test_tail_reads_the_newest_file_then_its_rotations(tmp_path: Path) -> None:
    old, new = tmp_path / "mail.log.1", tmp_path / "mail.log"
    old.write_text("o1\no2\no3\n")
    new.write_text("n1\nn2\n")
    os.utime(old, (1_000_000, 1_000_000))
    source = scripted(Path(f"{tmp_path}/mail.log*"))
    tail, stats = source.tail(4)
    assert [(file.path.name, lines) for file, lines in tail] == [
        ("mail.log.1", [b"o2", b"o3"]),
        ("mail.log", [b"n1", b"n2"]),
    ]
    tail, _ = source.tail(1)
    assert [(file.path.name, lines) for file, lines in tail] == [("mail.log", [b"n2"])]
    assert stats.error is None
