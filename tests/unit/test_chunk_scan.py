"""The chunk scanner reads exactly what the line-by-line decoder reads (issue 13, Deliver 1).

Every sample log, the real Postfix harness's output, the hostile lines and a generated log
are read both ways, with several batch and chunk sizes: events (with their ``file:line``),
checkpoints, line counts, bad-line examples and foreign samples must be identical. The
scanner must also really skip: most lines of a gateway's log never reach ``feed``.
"""

from __future__ import annotations

import gzip
import logging
import os
import random
from pathlib import Path

import pytest

from connector.sources import files
from connector.sources.base import FOREIGN_SAMPLE_LINES, SourceCheckpoint
from connector.sources.chunk_scan import has_long_line
from connector.sources.formats import log_source
from connector.sources.postfix import PostfixDecoder, PostfixJoiner
from tests.conftest import DATA, utc
from tests.hostile_lines import ISSUE_CASES
from tests.scan_compare import HOSTILE_LINES, both, read_all

SAMPLES = sorted((DATA / "postfix").glob("*.log"))
GENERATED = DATA / "postfix" / "generated-300.log"


def hostile_log(path: Path, copies: int = 4, seed: int = 13) -> Path:
    """The hostile lines and the issue's cases among a generated log's, shuffled, ending with
    an unfinished line."""
    lines = list(HOSTILE_LINES) + [line.encode("utf-8", "surrogatepass") for line in ISSUE_CASES["postfix"]]
    lines = lines * copies + GENERATED.read_bytes().splitlines()[:600]
    random.Random(seed).shuffle(lines)
    path.write_bytes(b"\n".join(lines) + b"\nNov 27 08:14:31 mx1 postfix/qmgr[2]: 4F3A2B1C9D: rem")
    return path


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
@pytest.mark.parametrize("batch_lines", [7, 50_000])
def test_sample_logs_read_the_same(sample: Path, batch_lines: int) -> None:
    lines, scanned = both(sample, batch_lines=batch_lines)
    assert sum(len(batch[0]) for batch in lines) > 0
    assert scanned == lines


@pytest.mark.parametrize("chunk_bytes", [512, 4096, 1 << 20])
@pytest.mark.parametrize("batch_lines", [10, 333, 50_000])
def test_hostile_lines_read_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_bytes: int, batch_lines: int
) -> None:
    monkeypatch.setattr(files, "CHUNK_BYTES", chunk_bytes)
    log = hostile_log(tmp_path / "mail.log")
    lines, scanned = both(log, batch_lines=batch_lines)
    bad = sum(batch[2][2] for batch in lines)
    foreign = sum(batch[2][1] for batch in lines)
    assert bad > 0 and foreign > 0 and sum(len(batch[0]) for batch in lines) > 0  # the cases are there
    assert scanned == lines
    # The unfinished last line is left for the next run, either way.
    assert lines[-1][1]["files"][-1]["offset"] == log.read_bytes().rindex(b"\n") + 1


def test_a_compressed_rotation_reads_the_same(tmp_path: Path) -> None:
    log = hostile_log(tmp_path / "plain.log", copies=2)
    with gzip.open(tmp_path / "mail.log.1.gz", "wb") as handle:
        handle.write(log.read_bytes())  # its unfinished last line is read: a .gz is complete
    log.unlink()
    lines, scanned = both(str(tmp_path / "mail.log*"), batch_lines=100)
    assert scanned == lines
    assert lines[-1][1]["files"][-1]["complete"]


def test_reading_on_from_a_checkpoint_reads_the_same(tmp_path: Path) -> None:
    log = hostile_log(tmp_path / "mail.log")
    first_lines, first_scanned = both(log, batch_lines=200)
    assert first_scanned == first_lines
    with log.open("ab") as handle:  # the unfinished line ends, more follow
        handle.write(b"oved\n" + GENERATED.read_bytes())
    checkpoint = SourceCheckpoint.from_json(first_lines[-1][1])
    lines, scanned = both(log, batch_lines=200, checkpoint=checkpoint)
    assert scanned == lines
    assert sum(len(batch[0]) for batch in lines) > 300


def test_many_foreign_lines_keep_the_same_sample(tmp_path: Path) -> None:
    """A shared syslog file: the sample the recognition rule tries other formats on is the
    batch's first foreign lines in either path."""
    generated = GENERATED.read_bytes().splitlines()
    foreign = [f"Nov 27 08:14:{i % 60:02d} mx1 sshd[{i}]: session {i} opened: for: root".encode() for i in range(900)]
    mixed = [line for pair in zip(foreign, generated, strict=False) for line in pair]
    log = tmp_path / "syslog"
    log.write_bytes(b"\n".join(mixed) + b"\n")
    lines, scanned = both(log, batch_lines=1000)
    assert scanned == lines
    assert len(lines[0][5]) == FOREIGN_SAMPLE_LINES
    assert lines[0][5][0].startswith("Nov 27 08:14:00 mx1 sshd[0]: ")


def test_the_scanner_hands_only_lines_that_matter_to_python(monkeypatch: pytest.MonkeyPatch) -> None:
    """Connect, disconnect and ``client=`` lines are counted, never decoded; no line of a
    plain gateway log goes line by line through ``feed``."""
    fed: list[str] = []
    joined: list[str] = []
    feed, join = PostfixDecoder.feed, PostfixJoiner.feed_queue_line
    monkeypatch.setattr(PostfixDecoder, "feed", lambda self, line, out: fed.append(line) or feed(self, line, out))
    monkeypatch.setattr(
        PostfixJoiner, "feed_queue_line", lambda self, qid, *rest: joined.append(qid) or join(self, qid, *rest)
    )
    batches = read_all(log_source("postfix", "gw", GENERATED))
    read = sum(batch[2][0] for batch in batches)
    foreign = sum(batch[2][1] for batch in batches)
    assert read == len(GENERATED.read_bytes().splitlines())
    assert len(fed) <= foreign + len(batches)  # foreign lines and each block's first line
    assert len(joined) < 0.7 * read


def test_a_decoder_bug_is_one_bad_line_and_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def buggy(self: PostfixJoiner, qid: str) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(PostfixJoiner, "removed", buggy)
    with caplog.at_level(logging.WARNING, logger="connector.sources.files"):
        lines, scanned = both(GENERATED, batch_lines=100)
    assert scanned == lines
    assert sum(batch[2][2] for batch in scanned) == GENERATED.read_bytes().count(b": removed\n")
    warnings = [r for r in caplog.records if "decoder failed with RuntimeError" in r.getMessage()]
    assert len(warnings) == 2  # one per run: the line run and the scanning run


def test_long_lines_are_found_by_window() -> None:
    limit = files.MAX_LINE_BYTES
    short = (b"x" * 100 + b"\n") * 2000
    assert not has_long_line(short, 0, len(short), limit)
    long = short + b"y" * (limit + 1) + b"\n" + short
    assert has_long_line(long, 0, len(long), limit)
    assert not has_long_line(long, 0, len(short), limit)  # only the range asked about


def test_a_reset_from_a_time_drops_the_same_events(tmp_path: Path) -> None:
    log = hostile_log(tmp_path / "mail.log")  # generated lines of March 4, hostile ones of Nov 27
    written = utc("2026-12-02T00:00:00").timestamp()
    os.utime(log, (written, written))  # the year of stamps without one: 2026
    lines, scanned = both(log, batch_lines=250, checkpoint=SourceCheckpoint(read_from=utc("2026-06-01T00:00:00")))
    assert scanned == lines
    assert sum(batch[2][3] for batch in lines) > 0  # before_read_from
    assert sum(len(batch[0]) for batch in lines) > 0
