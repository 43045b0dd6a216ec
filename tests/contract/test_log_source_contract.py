"""The ``LogSource`` contract (connector/sources/base.py, docs/sources.md), run over every format.

The same small mail flow (``mail_flow.py``) is written in Postfix, Exim, Exchange message
tracking and JSON lines form; each source must give the same delivery events (recipient,
outcome, UTC time, message identity), checkpoint only at line boundaries, resume from a
checkpoint (stored as JSON, as the ingest job does) reading only new lines, follow a rotation,
and count a malformed line instead of raising. Where a format cannot say something, the
expectation says so per format (``RCPT_STAGE_SEEN``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connector.app import build_source
from connector.config.sources import SourceSettings
from connector.domain.events import DeliveryEvent, DeliveryStatus, message_identity
from connector.sources.base import LogSource, SourceBatch, SourceCheckpoint
from tests.contract.mail_flow import FORMATS, Format, Message

T0 = datetime(2026, 11, 27, 10, 0, 6, tzinfo=UTC)
M1 = Message(1, T0, "M1.abc@Partner.TEST", "sender@partner.test", ("alice@acme.com",), ("nouser@acme.com",))
# Recipients are kept as logged (case, +tags): canonicalising them is the policy's job (docs/sources.md).
M2 = Message(2, T0 + timedelta(minutes=5), "m2@partner.test", "news@partner.test", ("Bob.Baker+News@ACME.com",))
M3 = Message(3, T0 + timedelta(minutes=10), "m3@partner.test", "sender@partner.test", ("carol@acme.com",))
M4 = Message(4, T0 + timedelta(minutes=15), "m4@partner.test", "sender@partner.test", ("dave@acme.com",))
M5 = Message(5, T0 + timedelta(minutes=20), "m5@partner.test", "sender@partner.test", ("erin@acme.com",))

# Exchange logs a refusal by the next hop as FAIL after the message was accepted: it cannot
# say the refusal came at RCPT TO (docs/sources.md), the other formats can.
RCPT_STAGE_SEEN = {"postfix": True, "exim": True, "exchange": False, "jsonl": True}


@dataclass(frozen=True, order=True)
class Delivery:
    """What every format must agree on for one recipient of one message."""

    recipient: str
    status: DeliveryStatus
    at: datetime
    message: str | None
    dsn: str | None
    rcpt_stage: bool


def expected(fmt: str, *messages: Message) -> list[Delivery]:
    found = []
    for m in messages:
        identity = message_identity(m.message_id)
        found += [Delivery(r, DeliveryStatus.SENT, m.at, identity, "2.0.0", False) for r in m.delivered]
        stage = RCPT_STAGE_SEEN[fmt]
        found += [Delivery(r, DeliveryStatus.BOUNCED, m.at, identity, "5.1.1", stage) for r in m.refused]
    return sorted(found)


def seen(events: list[DeliveryEvent]) -> list[Delivery]:
    for event in events:
        assert event.at.utcoffset() == timedelta(0), event  # aware, in UTC
    return sorted(
        Delivery(
            e.recipient,
            e.status,
            e.at,
            message_identity(e.message_id) if e.message_id else None,
            e.dsn,
            e.rcpt_stage,
        )
        for e in events
    )


@dataclass
class Run:
    """Everything one ``read`` gave."""

    batches: list[SourceBatch] = field(default_factory=list)
    checkpoint: SourceCheckpoint | None = None

    @property
    def events(self) -> list[DeliveryEvent]:
        return [event for batch in self.batches for event in batch.events]

    def total(self, counter: str) -> int:
        return sum(int(getattr(batch.stats, counter)) for batch in self.batches)


def read(source: LogSource, checkpoint: SourceCheckpoint | None) -> Run:
    """Read to the end; the checkpoint goes through JSON, as the ingest job stores it."""
    run = Run(checkpoint=checkpoint)
    for batch in source.read(checkpoint):
        run.batches.append(batch)
        run.checkpoint = SourceCheckpoint.from_json(json.loads(json.dumps(batch.checkpoint.to_json())))
    return run


def text(lines: Sequence[str]) -> str:
    return "".join(line + "\n" for line in lines)


def lines_of(*messages: Message, fmt: Format) -> list[str]:
    return [line for m in messages for line, _ in fmt.message(m)]


@pytest.fixture(params=sorted(FORMATS))
def fmt(request: pytest.FixtureRequest) -> Format:
    return FORMATS[request.param]


@pytest.fixture
def source(fmt: Format, tmp_path: Path) -> LogSource:
    settings = SourceSettings(
        name="gw",
        format=fmt.name,  # type: ignore[arg-type]
        paths=[tmp_path / fmt.pattern],
        timezone="Europe/Berlin",  # for the formats whose stamps carry no zone
        batch_lines=10,  # the smallest allowed: several batches, hence several checkpoints
    )
    return build_source(settings)


def first_file(fmt: Format, tmp_path: Path) -> Path:
    """The live file with M1, a malformed line, a blank line and M2."""
    path = tmp_path / fmt.live
    path.write_text(text([*fmt.header(T0), *lines_of(M1, fmt=fmt), fmt.malformed(), "", *lines_of(M2, fmt=fmt)]))
    return path


def test_the_same_flow_gives_the_same_delivery_events(fmt: Format, source: LogSource, tmp_path: Path) -> None:
    first_file(fmt, tmp_path)
    run = read(source, None)
    assert seen(run.events) == expected(fmt.name, M1, M2)
    assert source.name == "gw" and source.format_name == fmt.name
    assert fmt.pattern in source.describe()
    assert (source.missing_after, source.commit_seconds) == (timedelta(minutes=60), 10.0)  # the settings' defaults


def test_a_malformed_line_is_counted_not_raised(fmt: Format, source: LogSource, tmp_path: Path) -> None:
    """Every line is the format's own, foreign (a blank line) or malformed: counted apart."""
    path = first_file(fmt, tmp_path)
    run = read(source, None)
    assert run.total("bad_lines") == 1 and run.total("foreign_lines") == 1
    examples = [example for batch in run.batches for example in batch.stats.bad_line_examples]
    assert [e.text for e in examples] == [fmt.malformed()]
    assert examples[0].line_no == path.read_text().splitlines().index(fmt.malformed()) + 1
    assert run.total("lines_read") == len(path.read_text().splitlines())
    assert len(run.events) == 3  # the lines around it were read


def test_checkpoints_fall_on_line_boundaries_and_resume_inside_a_message(
    fmt: Format, source: LogSource, tmp_path: Path
) -> None:
    """A checkpoint taken between the lines of one message carries what is needed to finish it."""
    m3 = fmt.message(M3)
    cut = next(i for i, (_, delivery) in enumerate(m3) if delivery)
    complete = text([*fmt.header(T0), *lines_of(M1, M2, fmt=fmt), *(line for line, _ in m3[:cut])])
    unfinished = m3[cut][0][: len(m3[cut][0]) // 2]  # the gateway is writing this line right now
    path = tmp_path / fmt.live
    path.write_text(complete + unfinished)

    run = read(source, None)
    content = path.read_bytes()
    offsets = [batch.checkpoint.files[-1].offset for batch in run.batches]
    assert len(offsets) >= 1 and offsets == sorted(offsets)
    assert all(content[:offset].endswith(b"\n") for offset in offsets)
    assert offsets[-1] == len(complete.encode())  # the unfinished line is left for the next run
    assert seen(run.events) == expected(fmt.name, M1, M2)

    with path.open("a") as log:
        log.write(m3[cut][0][len(unfinished) :] + "\n" + text([line for line, _ in m3[cut + 1 :]]))
    resumed = read(source, run.checkpoint)
    assert seen(resumed.events) == expected(fmt.name, M3)
    assert resumed.total("lines_read") == len(m3) - cut


def test_resuming_reads_only_new_lines(fmt: Format, source: LogSource, tmp_path: Path) -> None:
    path = first_file(fmt, tmp_path)
    first = read(source, None)

    again = read(source, first.checkpoint)
    assert again.events == [] and again.total("lines_read") == 0

    with path.open("a") as log:
        log.write(text(lines_of(M3, fmt=fmt)))
    appended = read(source, again.checkpoint)
    assert seen(appended.events) == expected(fmt.name, M3)
    assert appended.total("lines_read") == len(fmt.message(M3))
    assert appended.total("bad_lines") == 0  # the malformed line is not counted twice


def test_a_rotation_reads_the_rest_of_the_old_file_then_the_new_one(
    fmt: Format, source: LogSource, tmp_path: Path
) -> None:
    path = first_file(fmt, tmp_path)
    first = read(source, None)

    with path.open("a") as log:  # written before the gateway switched files
        log.write(text(lines_of(M4, fmt=fmt)))
    if fmt.rotated:
        path.rename(tmp_path / fmt.rotated)
    newer = datetime.now().timestamp() + 1
    new_file = tmp_path / fmt.next_live
    new_file.write_text(text([*fmt.header(M5.at), *lines_of(M5, fmt=fmt)]))
    os.utime(new_file, (newer, newer))  # written after the old file's last line

    rotated = read(source, first.checkpoint)
    assert seen(rotated.events) == expected(fmt.name, M4, M5)
    assert len(rotated.checkpoint.files if rotated.checkpoint else ()) == 2

    assert read(source, rotated.checkpoint).events == []
