"""Rotated files are read exactly once: rename + new file, copytruncate, .gz rotations.

Each test cuts the real Postfix sample at every line (or a few lines), rotates
between two runs and checks the events equal one read of the whole sample:
nothing lost, nothing twice, queue ids joined across the rotation.
"""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import pytest

from connector.domain.events import DeliveryEvent
from connector.sources.base import SourceCheckpoint
from connector.sources.formats import log_source
from tests.conftest import DATA

SAMPLE = DATA / "postfix" / "postlogd-maillog_file.log"
LINES = SAMPLE.read_bytes().splitlines(keepends=True)


def read(pattern: Path | str, checkpoint: SourceCheckpoint | None, batch_lines: int = 7):  # type: ignore[no-untyped-def]
    batches = list(log_source("postfix", "gw", [pattern], batch_lines=batch_lines).read(checkpoint))
    return [e for b in batches for e in b.events], batches[-1].checkpoint, batches


def keys(events: list[DeliveryEvent]) -> list[tuple[str, str, str | None, str | None]]:
    return [(e.recipient, e.status.value, e.message_id, e.sender) for e in events]


WHOLE = keys(read(SAMPLE, None)[0])
# File times from 2027: the sample's stamps have no year and take it from the file's time, and
# events dated before 1970 are malformed lines (connector.domain.events.EARLIEST_EVENT_AT).
T0 = 1_800_000_000


def write(path: Path, lines: list[bytes], mtime: float) -> None:
    path.write_bytes(b"".join(lines))
    os.utime(path, (mtime, mtime))


SPLITS = [1, 5, 8, 22, 24, 25, 30, 48, 50, 55]


@pytest.mark.parametrize("split", SPLITS)
def test_rename_rotation_reads_the_rest_of_the_old_file_then_the_new_one(tmp_path: Path, split: int) -> None:
    live = tmp_path / "mail.log"
    write(live, LINES[: split - 1], T0 + 1_000)
    first, checkpoint, _ = read(tmp_path / "mail.log*", None)
    # Postfix wrote one more line, then logrotate renamed the file and a new one began.
    with live.open("ab") as handle:
        handle.write(LINES[split - 1])
    os.utime(live, (T0 + 1_100, T0 + 1_100))
    live.rename(tmp_path / "mail.log.1")
    write(live, LINES[split:], T0 + 1_200)
    rest, checkpoint, _batches = read(tmp_path / "mail.log*", checkpoint)
    assert keys(first + rest) == WHOLE
    again, _, _ = read(tmp_path / "mail.log*", checkpoint)
    assert again == []


@pytest.mark.parametrize("split", SPLITS)
def test_compressed_rotation_of_a_half_read_file(tmp_path: Path, split: int) -> None:
    """The old file was gzipped (no delaycompress) before its rest was read."""
    live = tmp_path / "mail.log"
    write(live, LINES[:split], T0 + 1_000)
    first, checkpoint, _ = read(tmp_path / "mail.log*", None)
    with live.open("ab") as handle:
        handle.write(b"".join(LINES[split : split + 3]))
    with live.open("rb") as src, gzip.open(tmp_path / "mail.log.1.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.utime(tmp_path / "mail.log.1.gz", (T0 + 1_100, T0 + 1_100))
    live.unlink()
    write(live, LINES[split + 3 :], T0 + 1_200)
    rest, checkpoint, _ = read(tmp_path / "mail.log*", checkpoint)
    assert keys(first + rest) == WHOLE
    # Next rotation: mail.log -> mail.log.1, mail.log.1.gz -> mail.log.2.gz; nothing is read twice.
    (tmp_path / "mail.log.1.gz").rename(tmp_path / "mail.log.2.gz")
    live.rename(tmp_path / "mail.log.1")
    assert read(tmp_path / "mail.log*", checkpoint)[0] == []


@pytest.mark.parametrize("split", SPLITS)
def test_copytruncate(tmp_path: Path, split: int) -> None:
    live = tmp_path / "mail.log"
    write(live, LINES[:split], T0 + 1_000)
    first, checkpoint, _ = read(tmp_path / "mail.log*", None)
    with live.open("ab") as handle:
        handle.write(b"".join(LINES[split : split + 2]))
    shutil.copy(live, tmp_path / "mail.log.1")
    os.utime(tmp_path / "mail.log.1", (T0 + 1_100, T0 + 1_100))
    with live.open("r+b") as handle:  # same inode, new content
        handle.truncate(0)
        handle.write(b"".join(LINES[split + 2 :]))
    os.utime(live, (T0 + 1_200, T0 + 1_200))
    rest, checkpoint, _ = read(tmp_path / "mail.log*", checkpoint)
    assert keys(first + rest) == WHOLE


def test_first_run_reads_every_rotation_oldest_first_and_then_only_new_lines(tmp_path: Path) -> None:
    with gzip.open(tmp_path / "mail.log.2.gz", "wb") as handle:
        handle.write(b"".join(LINES[:20]))
    os.utime(tmp_path / "mail.log.2.gz", (T0 + 1_000, T0 + 1_000))
    write(tmp_path / "mail.log.1", LINES[20:40], T0 + 1_100)
    write(tmp_path / "mail.log", LINES[40:50], T0 + 1_200)
    events, checkpoint, batches = read(tmp_path / "mail.log*", None)
    assert sum(b.stats.lines_read for b in batches) == 50
    with (tmp_path / "mail.log").open("ab") as handle:
        handle.write(b"".join(LINES[50:]))
    rest, _, batches = read(tmp_path / "mail.log*", checkpoint)
    assert sum(b.stats.lines_read for b in batches) == len(LINES) - 50
    assert keys(events + rest) == WHOLE


def test_a_grown_rotated_file_is_read_to_its_end(tmp_path: Path) -> None:
    """Postfix may write a few lines to the renamed file before it reopens the log."""
    live = tmp_path / "mail.log"
    write(live, LINES[:30], T0 + 1_000)
    first, checkpoint, _ = read(tmp_path / "mail.log*", None)
    live.rename(tmp_path / "mail.log.1")
    write(live, LINES[35:], T0 + 1_200)
    middle, checkpoint, _ = read(tmp_path / "mail.log*", checkpoint)
    with (tmp_path / "mail.log.1").open("ab") as handle:
        handle.write(b"".join(LINES[30:35]))
    late, _, _ = read(tmp_path / "mail.log*", checkpoint)
    assert sorted(keys(first + middle + late)) == sorted(WHOLE)


def test_checkpoint_survives_json(tmp_path: Path) -> None:
    live = tmp_path / "mail.log"
    write(live, LINES[:25], T0 + 1_000)
    first, checkpoint, _ = read(tmp_path / "mail.log*", None)
    restored = SourceCheckpoint.from_json(checkpoint.to_json())
    with live.open("ab") as handle:
        handle.write(b"".join(LINES[25:]))
    rest, _, _ = read(tmp_path / "mail.log*", restored)
    assert keys(first + rest) == WHOLE


def test_skeleton_checkpoint_is_still_understood() -> None:
    old = {"position": {"path": "/x", "device": 1, "inode": 2, "fingerprint": "3:abc", "offset": 4}, "parser_state": {}}
    checkpoint = SourceCheckpoint.from_json(old)
    assert checkpoint.position is not None and checkpoint.position.offset == 4
