"""Reading a real file from a checkpoint: only new lines, nothing twice, nothing lost."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from connector.sources.base import SourceCheckpoint
from connector.sources.formats import log_source
from tests.conftest import DATA

SAMPLE = DATA / "postfix" / "postlogd-maillog_file.log"
LINES = SAMPLE.read_bytes().splitlines(keepends=True)


def read(path: Path, checkpoint: SourceCheckpoint | None, batch_lines: int = 50_000):  # type: ignore[no-untyped-def]
    batches = list(log_source("postfix", "gw", path, batch_lines=batch_lines).read(checkpoint))
    events = [e for b in batches for e in b.events]
    return events, batches[-1].checkpoint, batches


def keys(events) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(e.recipient, e.status.value, e.message_id) for e in events]


def test_rerun_reads_only_new_lines(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    log.write_bytes(b"".join(LINES[:20]))
    first, checkpoint, _ = read(log, None)
    again, checkpoint2, batches = read(log, checkpoint)
    assert again == [] and batches[-1].stats.lines_read == 0
    with log.open("ab") as handle:
        handle.write(b"".join(LINES[20:]))
    rest, _, batches = read(log, checkpoint2)
    assert batches[-1].stats.lines_read == len(LINES) - 20
    whole, _, _ = read(SAMPLE, None)
    assert keys(first + rest) == keys(whole)


def test_every_split_point_gives_the_same_events(tmp_path: Path) -> None:
    """A queue id whose lines straddle the checkpoint still gets its message-id and sender."""
    whole = keys(read(SAMPLE, None)[0])
    log = tmp_path / "mail.log"
    for split in range(len(LINES) + 1):
        log.write_bytes(b"".join(LINES[:split]))
        first, checkpoint, _ = read(log, None)
        with log.open("ab") as handle:
            handle.write(b"".join(LINES[split:]))
        rest, _, _ = read(log, checkpoint)
        assert keys(first + rest) == whole, f"split at line {split}"


def test_batches_carry_their_own_checkpoint() -> None:
    whole, _, _ = read(SAMPLE, None)
    events, _, parts = read(SAMPLE, None, batch_lines=10)
    assert len(parts) == 6  # 56 lines
    offsets = [p.checkpoint.position.offset for p in parts if p.checkpoint.position]
    assert offsets == sorted(offsets) and offsets[-1] == SAMPLE.stat().st_size
    assert keys(events) == keys(whole)


def test_a_line_still_being_written_is_left_for_next_time(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    partial = LINES[7][:40]
    log.write_bytes(b"".join(LINES[:7]) + partial)
    events, checkpoint, batches = read(log, None)
    assert batches[-1].stats.lines_read == 7 and events == []
    with log.open("ab") as handle:
        handle.write(LINES[7][40:])
    events, _, _ = read(log, checkpoint)
    assert [e.recipient for e in events] == ["alice@example.com"]


def test_truncated_file_is_read_from_the_start(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    log.write_bytes(b"".join(LINES))
    _, checkpoint, _ = read(log, None)
    with log.open("r+b") as handle:  # copytruncate: same inode, shorter
        handle.truncate(0)
        handle.write(b"".join(LINES[:10]))
    events, _, batches = read(log, checkpoint)
    assert batches[0].stats.restarted is not None and "truncated" in batches[0].stats.restarted
    assert [e.recipient for e in events] == ["alice@example.com"]


def test_rotated_file_is_read_from_the_start(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    log.write_bytes(b"".join(LINES[:10]))
    _, checkpoint, _ = read(log, None)
    os.rename(log, tmp_path / "mail.log.1")
    other = DATA / "postfix" / "rsyslog-traditional.log"
    shutil.copy(other, log)  # a new inode under the old name; the pattern misses mail.log.1
    events, _, batches = read(log, checkpoint)
    assert "rotated" in (batches[0].stats.restarted or "")
    assert len(events) == len(read(other, None)[0])


def test_missing_file_is_reported_not_fatal(tmp_path: Path) -> None:
    events, checkpoint, batches = read(tmp_path / "absent.log", None)
    assert events == [] and checkpoint.position is None
    assert "cannot open" in (batches[0].stats.error or "")


def test_malformed_lines_are_counted_with_examples(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    damaged = b"Nov 27 08:5 mx1 postfix/qmgr[1]: 784D0160034: removed"  # Postfix's own line: malformed
    log.write_bytes(b"".join(LINES[:8]) + damaged + b"\ncomplete garbage\n" + b"".join(LINES[8:]))
    events, _, batches = read(log, None)
    stats = batches[-1].stats
    assert stats.bad_lines == 1 and stats.foreign_lines == 1  # the garbage is no Postfix line: foreign
    assert stats.bad_line_examples[0].line_no == 9
    assert stats.bad_line_examples[0].text == damaged.decode()
    assert len(events) == len(read(SAMPLE, None)[0])
