"""connector ingest's progress line: on a terminal only."""

from __future__ import annotations

import io

from connector.cli.ingest_commands import Progress
from connector.sources.base import SourceBatch, SourceCheckpoint, SourceStats


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def batch(lines: int, events: int, bad: int) -> SourceBatch:
    return SourceBatch([], SourceCheckpoint(), SourceStats(lines_read=lines, events=events, bad_lines=bad))


def test_progress_on_a_terminal() -> None:
    stream = Terminal()
    progress = Progress(stream)
    progress.update("gw", batch(50_000, 9_000, 1))
    progress.update("gw", batch(25_000, 1_000, 0))
    progress.close()
    text = stream.getvalue()
    assert "\rgw: 75,000 lines, 10,000 events" in text and text.endswith("\n")
    assert (progress.lines, progress.events, progress.bad_lines) == (75_000, 10_000, 1)


def test_quiet_when_not_a_terminal() -> None:
    stream = io.StringIO()
    progress = Progress(stream)
    progress.update("gw", batch(10, 1, 0))
    progress.close()
    assert stream.getvalue() == "" and progress.lines == 10
