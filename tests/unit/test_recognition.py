"""The one rule for "a source recognises (almost) none of its lines" (issue 14, Deliver 1), shared by
ingest and ``connector source check``, and the reader's part: the foreign sample, the reset marks
(``rereading``, ``read_from``) and "no pattern matched a file"."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

import pytest

from connector.sources.base import FOREIGN_SAMPLE_LINES, SourceCheckpoint
from connector.sources.check import SourceCheck, Verdict, check_lines
from connector.sources.exim import EximDecoder
from connector.sources.formats import log_source
from connector.sources.postfix import PostfixDecoder
from connector.sources.recognition import (
    MIN_LINES,
    Recognition,
    reading_format,
    recognition_of,
    too_few_recognised,
)
from tests.conftest import ROOT, utc

DEMO_LOG = ROOT / "config" / "demo" / "logs" / "mail.log"
AT = utc("2026-11-27T12:00:00")
CRON = "2026-11-27T10:{:02d}:01.000000+00:00 mx1 CRON[4131]: pam_unix(cron:session): session opened for user root"
SSHD = "2026-11-27T10:{:02d}:02.000000+00:00 mx1 sshd[812]: Connection closed by 203.0.113.7 port 51234 [preauth]"


def quiet_syslog(lines: int) -> list[str]:
    """Other programs' lines only: a syslog hour without a single mail line."""
    return [(CRON if i % 2 else SSHD).format(i % 60) for i in range(lines)]


@pytest.mark.parametrize(
    ("recognised", "counted", "failed"),
    [
        (0, MIN_LINES - 1, False),  # too few lines to judge
        (0, MIN_LINES, True),
        (1, 20, True),  # 5 %
        (2, 20, False),  # exactly a tenth: recognised enough
        (99, 1000, True),
        (100, 1000, False),
    ],
)
def test_the_threshold(recognised: int, counted: int, failed: bool) -> None:
    assert too_few_recognised(recognised, counted) is failed


def test_malformed_lines_of_the_format_count_foreign_ones_do_not() -> None:
    # jsonl on a syslog file: every line is malformed.
    wrong = Recognition("jsonl", lines=916, foreign=0, malformed=916)
    assert wrong.failed and wrong.message() == "916 of 916 lines are not jsonl lines: is `format` right?"
    # A shared syslog with a little Postfix: 30 Postfix lines among 970 others is fine ...
    assert not Recognition("postfix", lines=1000, foreign=970, malformed=0).failed
    # ... and so is an hour with no Postfix line at all, when no other format reads the lines.
    assert not Recognition("postfix", lines=500, foreign=500, malformed=0).failed
    # Postfix lines that lost their header: 95 of the 100 Postfix lines malformed, the 900 others not counted.
    damaged = Recognition("postfix", lines=1000, foreign=900, malformed=95)
    assert damaged.failed
    assert damaged.one_line() == (
        "95 of 100 lines are not postfix lines: is `format` right? (900 other programs' lines not counted)"
    )
    # Foreign lines that another format reads count: exim on a Postfix log.
    exim_on_postfix = Recognition("exim", lines=916, foreign=916, malformed=0, read_as="postfix")
    assert exim_on_postfix.failed
    assert exim_on_postfix.one_line() == (
        "916 of 916 lines are not exim lines: is `format` right? (they read as postfix lines)"
    )


def test_other_formats_are_tried_on_the_foreign_lines() -> None:
    postfix_lines = DEMO_LOG.read_text().splitlines()[:FOREIGN_SAMPLE_LINES]
    assert reading_format(postfix_lines, "exim", at=AT) == "postfix"
    assert reading_format(postfix_lines, "postfix", at=AT) is None  # never the configured one
    assert reading_format(quiet_syslog(200), "postfix", at=AT) is None
    assert reading_format([], "exim", at=AT) is None
    judged = recognition_of("exim", lines=916, foreign=916, malformed=0, foreign_sample=postfix_lines, at=AT)
    assert judged.read_as == "postfix" and judged.failed
    quiet = quiet_syslog(300)
    judged = recognition_of("postfix", lines=300, foreign=300, malformed=0, foreign_sample=quiet, at=AT)
    assert judged.read_as is None and not judged.failed


def test_source_check_uses_the_same_rule() -> None:
    """A syslog file with a little Postfix, or none, is not "the wrong format" for ``source check`` either."""
    demo = [line.encode() for line in DEMO_LOG.read_text().splitlines()]
    postfix = [line for line in demo if b" postfix" in line]
    shared = SourceCheck("postfix")
    decoder = PostfixDecoder("gw", UTC, {})
    decoder.begin_file(AT)
    check_lines(decoder, "syslog", [q.encode() for q in quiet_syslog(970)] + postfix[:30], shared)
    assert shared.understood == 30 and shared.verdict is Verdict.MIXED
    quiet = SourceCheck("postfix")
    check_lines(decoder, "syslog", [q.encode() for q in quiet_syslog(300)], quiet)
    assert quiet.understood == 0 and quiet.verdict is Verdict.MIXED
    wrong = SourceCheck("exim")
    exim = EximDecoder("gw", UTC, {})
    check_lines(exim, "mail.log", demo, wrong)
    assert wrong.kinds and wrong.verdict is Verdict.WRONG and wrong.recognition.read_as == "postfix"


def jsonl_line(minute: int) -> str:
    return (
        f'{{"at": "2026-11-2{minute // 60}T10:{minute % 60:02d}:00Z", "recipient": "u{minute}@acme.com", '
        '"status": "sent", "reply": "250 ok"}\n'
    )


def test_a_batch_keeps_its_first_foreign_lines(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_text(jsonl_line(0) + "\n" * (FOREIGN_SAMPLE_LINES + 50))  # blank lines are foreign to jsonl
    [batch] = list(log_source("jsonl", "js", log).read(None))
    assert batch.stats.foreign_lines == FOREIGN_SAMPLE_LINES + 50
    assert len(batch.foreign_sample) == FOREIGN_SAMPLE_LINES


def test_read_from_drops_older_events_and_the_marks_end_with_the_run(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_text("".join(jsonl_line(m) for m in range(120)))  # 2026-11-20 10:00 .. 2026-11-21 10:59
    reset = SourceCheckpoint(rereading=True, read_from=utc("2026-11-21T10:30:00"))
    batches = list(log_source("jsonl", "js", log, batch_lines=50).read(reset))
    # Lines 1-50, 51-100, 101-120: the events of 11-21 10:30 and later are the last 30.
    assert [len(b.events) for b in batches] == [0, 10, 20]
    assert [b.stats.before_read_from for b in batches] == [50, 40, 0]
    assert all(e.at >= utc("2026-11-21T10:30:00") for b in batches for e in b.events)
    # Every batch but the run's last keeps the marks (an interrupted re-read goes on next run).
    assert all(b.checkpoint.rereading and b.checkpoint.read_from for b in batches[:-1])
    last = batches[-1].checkpoint
    assert not last.rereading and last.read_from is None
    assert "rereading" not in last.to_json() and "read_from" not in last.to_json()
    again = SourceCheckpoint.from_json(batches[0].checkpoint.to_json())
    assert again.rereading and again.read_from == utc("2026-11-21T10:30:00")


def test_nothing_matched_is_told_apart_from_a_missing_rotation(tmp_path: Path) -> None:
    live = tmp_path / "mail.log"
    live.write_text(DEMO_LOG.read_text())
    [batch] = list(log_source("postfix", "gw", [str(live), str(tmp_path / "mail.log.*.gz")]).read(None))
    assert batch.stats.unmatched_patterns == [str(tmp_path / "mail.log.*.gz")] and not batch.stats.nothing_matched
    typo = str(tmp_path / "mial.log*")
    [batch] = list(log_source("postfix", "gw", typo).read(None))
    assert batch.stats.nothing_matched and batch.stats.unmatched_patterns == [typo]
    assert batch.stats.error is None and batch.stats.restarted == f"no file matches {typo}"
    # Reading with no file keeps the positions of the files read before (and the marks: not read yet).
    read_before = list(log_source("postfix", "gw", live).read(None))
    before = SourceCheckpoint(files=read_before[-1].checkpoint.files, rereading=True)
    [batch] = list(log_source("postfix", "gw", typo).read(before))
    assert batch.checkpoint.files == before.files and batch.checkpoint.rereading


def test_missing_since_round_trips_and_old_checkpoints_still_load() -> None:
    since = utc("2026-11-27T10:00:00")
    checkpoint = SourceCheckpoint(missing_since=since)
    assert SourceCheckpoint.from_json(checkpoint.to_json()).missing_since == since
    old = SourceCheckpoint.from_json({"files": [], "parser_state": {}})
    assert (old.rereading, old.read_from, old.missing_since) == (False, None, None)
