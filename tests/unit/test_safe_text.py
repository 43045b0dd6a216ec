"""The one output-safety module (connector/domain/safe_text.py) and what uses it: log lines, event bounds."""

from __future__ import annotations

import csv
import io
import json
import logging
import sys

import pytest

from connector.domain.events import DeliveryEvent, DeliveryStatus
from connector.domain.safe_text import from_spreadsheet_cell, printable, spreadsheet_cell, storable
from connector.monitoring.logformat import JsonFormatter, TextFormatter, use_format
from connector.store.bounds import EVENT_FIELD_WIDTHS, storable_event
from connector.store.models import EventLogRow
from tests.conftest import utc

TITLE = "evil\x1b]0;pwned\x07@acme.com"  # ESC ] 0 ; ... BEL: sets the terminal's title
PERSIAN = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # "I want", with a zero-width non-joiner


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (TITLE, "evil\\x1b]0;pwned\\x07@acme.com"),
        ("a\r\nFAKE LINE", "a\\x0d\\x0aFAKE LINE"),
        ("csi\x9b31m del\x7f nul\x00", "csi\\x9b31m del\\x7f nul\\x00"),
        ("bidi \u202etxt.exe \u2066x\u2069", "bidi \\u202etxt.exe \\u2066x\\u2069"),
        ("line\u2028sep", "line\\u2028sep"),
        ("lone \ud800 surrogate", "lone \\ud800 surrogate"),
        ("tag \U000e0041", "tag \\U000e0041"),
        ("plain ü@bücher.example, nbsp\xa0ok", "plain ü@bücher.example, nbsp\xa0ok"),
        (PERSIAN + " 👩\u200d💻", PERSIAN + " 👩\u200d💻"),  # joiners shape text: kept
        (None, ""),
        (42, "42"),
    ],
)
def test_printable_escapes_what_a_terminal_would_act_on(raw: object, shown: str) -> None:
    assert printable(raw) == shown
    assert printable(shown) == shown  # idempotent: escaping twice changes nothing
    assert printable(raw).isprintable() or "\xa0" in shown or "\u200c" in shown


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://x.test","click")', '\'=HYPERLINK("http://x.test","click")'),
        ("@SUM(1)", "'@SUM(1)"),
        ("-2+3@acme.com", "'-2+3@acme.com"),
        ("+1", "'+1"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
        ("'=1+2", "''=1+2"),  # the guard itself is guarded: taking one off is exact
        ("'quoted", "''quoted"),
        ("alice@acme.com", "alice@acme.com"),
        ("a=b", "a=b"),
        ("", ""),
        (None, ""),
    ],
)
def test_spreadsheet_cells_are_neutralised_and_read_back_exactly(value: str | None, cell: str) -> None:
    assert spreadsheet_cell(value) == cell
    assert from_spreadsheet_cell(cell) == ("" if value is None else value)
    out = io.StringIO()
    csv.writer(out).writerow([cell])
    [[read]] = list(csv.reader(io.StringIO(out.getvalue())))
    assert from_spreadsheet_cell(read) == ("" if value is None else value)


def test_storable_replaces_nul_and_lone_surrogates_and_cuts_to_the_width() -> None:
    assert storable("a\x00b\ud800c\udc80") == "a\ufffdb\ufffdc\ufffd"
    assert storable("x" * 400, 320) == "x" * 320
    assert storable("é" * 400, 320) == "é" * 320  # characters, as PostgreSQL counts them
    plain = "250 2.0.0 Ok"
    assert storable(plain, 320) is plain
    assert storable("\ud800x").encode("utf-8") == "\ufffdx".encode()  # now encodable


def _event(**changes: object) -> DeliveryEvent:
    values: dict[str, object] = {
        "at": utc("2026-11-27T10:00:00"),
        "host": "mx1",
        "queue_id": "4DABC",
        "message_id": "m1@partner.test",
        "sender": "someone@partner.test",
        "recipient": "alice@acme.com",
        "orig_recipient": None,
        "relay": "mx.acme.com[192.0.2.1]:25",
        "dsn": "2.0.0",
        "status": DeliveryStatus.SENT,
        "reply": "250 2.0.0 Ok",
        "rcpt_stage": False,
    }
    values.update(changes)
    return DeliveryEvent(**values)  # type: ignore[arg-type]


def test_a_clean_event_is_passed_through_untouched() -> None:
    event = _event()
    assert storable_event(event) is event


def test_event_fields_are_freed_of_nul_and_surrogates_and_cut_to_their_columns() -> None:
    event = _event(
        sender="s" * 330 + "\x00@partner.test",
        message_id="<m\x00" + "x" * 2000 + ">",
        reply="250 ok \x00 \ud800",
        relay="r" * 500,
        dsn="2.0.\x00",
        host="mx\ud800",
        location="mail.log:\x001",
        ndr_recipients=("a\x00@b.test",),
    )
    clean = storable_event(event)
    assert clean.sender == "s" * 320
    assert clean.message_id is not None and len(clean.message_id) == 998 and "\x00" not in clean.message_id
    assert clean.reply == "250 ok \ufffd \ufffd" and clean.relay == "r" * 320 and clean.dsn == "2.0.\ufffd"
    assert clean.host == "mx\ufffd" and clean.location == "mail.log:\ufffd1"
    assert clean.ndr_recipients == ("a\ufffd@b.test",)
    for value in (clean.sender, clean.message_key, clean.reply, clean.relay, clean.host):
        assert value is not None and "\x00" not in value
        value.encode("utf-8")
    assert (clean.at, clean.status, clean.recipient) == (event.at, event.status, event.recipient)


def test_event_widths_are_the_columns_widths() -> None:
    """One source of truth: the bounds read the table, so the check and the column cannot disagree."""
    table = EventLogRow.__table__
    assert EVENT_FIELD_WIDTHS["sender"] == table.c.sender.type.length == 320  # type: ignore[attr-defined]
    assert "relay" not in table.c and EVENT_FIELD_WIDTHS["relay"] == 320  # not kept in the event log
    assert EVENT_FIELD_WIDTHS["recipient"] == table.c.recipient.type.length  # type: ignore[attr-defined]
    assert EVENT_FIELD_WIDTHS["message_id"] == table.c.message_key.type.length == 998  # type: ignore[attr-defined]
    assert EVENT_FIELD_WIDTHS["reply"] is None  # TEXT


def _record(message: str, *args: object, exc: bool = False) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise ValueError(f"bad {TITLE}")
        except ValueError:
            info = sys.exc_info()
    record = logging.LogRecord("connector.test", logging.WARNING, __file__, 1, message, args, info)
    record.created = utc("2026-11-27T10:00:00").timestamp()
    return record


def test_text_log_lines_escape_control_characters() -> None:
    line = TextFormatter().format(_record("refused %s\r\nFAKE 2026 INFO all good", TITLE, exc=True))
    assert not any(c in line for c in "\x1b\x07\r")
    assert "refused evil\\x1b]0;pwned\\x07@acme.com\\x0d\\x0aFAKE 2026 INFO all good" in line
    first, *traceback = line.split("\n")
    assert first.endswith(
        "WARNING connector.test: refused evil\\x1b]0;pwned\\x07@acme.com\\x0d\\x0aFAKE 2026 INFO all good"
    )
    assert traceback[0] == "Traceback (most recent call last):"  # the traceback keeps its lines
    assert traceback[-1] == "ValueError: bad evil\\x1b]0;pwned\\x07@acme.com"


def test_json_log_lines_escape_c1_and_bidi_too() -> None:
    line = JsonFormatter().format(_record("to %s \x9b31m \u202e", TITLE, exc=True))
    assert not any(c in line for c in "\x1b\x07\x9b\u202e")
    data = json.loads(line)
    assert data["message"] == "to evil\\x1b]0;pwned\\x07@acme.com \\x9b31m \\u202e"
    assert data["exception"].endswith("ValueError: bad evil\\x1b]0;pwned\\x07@acme.com")


def test_use_format_switches_plain_handlers_and_leaves_others_alone() -> None:
    root = logging.Logger("test-root")
    plain, custom, bare = logging.StreamHandler(io.StringIO()), logging.StreamHandler(), logging.StreamHandler()
    plain.setFormatter(logging.Formatter("%(levelname)s %(message)s"))

    class Mine(logging.Formatter):
        pass

    custom.setFormatter(Mine())
    for handler in (plain, custom, bare):
        root.addHandler(handler)
    use_format("text", root)
    assert isinstance(plain.formatter, TextFormatter) and plain.formatter._fmt == "%(levelname)s %(message)s"
    assert isinstance(bare.formatter, TextFormatter) and type(custom.formatter) is Mine
    root.warning("to %s", TITLE)
    assert plain.stream.getvalue() == "WARNING to evil\\x1b]0;pwned\\x07@acme.com\n"  # type: ignore[attr-defined]
    use_format("json", root)
    assert isinstance(plain.formatter, JsonFormatter) and type(custom.formatter) is Mine


def test_the_cli_logs_through_the_escaping_formatter(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    """``connector ...`` sets up logging itself: its handler escapes (pytest's own handlers are set aside)."""
    from connector.cli import main

    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    root.handlers.clear()
    try:
        assert main(["config", "check", "-c", "/nonexistent/connector.yaml"]) == 2
        [handler] = root.handlers
        assert isinstance(handler.formatter, TextFormatter)
        logging.getLogger("connector.test").warning("refused %s", TITLE)
    finally:
        for handler in root.handlers:
            root.removeHandler(handler)
        root.handlers[:] = saved
        root.setLevel(level)
    err = capsys.readouterr().err
    assert "refused evil\\x1b]0;pwned\\x07@acme.com" in err and "\x1b" not in err
