"""Property: for any mix of Postfix-like, foreign and damaged lines, however the file is cut into
chunks and batches, the chunk scanner hands on exactly what the line-by-line reader does
(issue 13, Deliver 1: events, checkpoints, counts, bad lines and foreign samples)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from connector.sources import files
from tests.scan_compare import DELIVERY, REJECT, both

STAMPS = [
    "Nov 27 08:14:31",
    "Nov  2 08:14:31",
    "Dec 31 23:59:59",
    "Feb 29 08:14:31",
    "Feb 30 08:14:31",
    "Nov 27 25:14:31",
    "Nov 27 08:14:61",
    "Nov 27 08:14:60",
    "Nov 27 08:14:3\u2467",
    "Xyz 27 08:14:31",
    "2026-11-27T08:14:31Z",
    "2026-11-27T08:14:31.5+01:00",
    "2026-11-27T08:14:31-0100",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "2026-13-45T08:14:31Z",
    "",
]
HOSTS = ["mx1", "m\udcffx", "a\tb", "", "mx1 mx2"]
PROGRAMS = [
    "postfix/smtp[1]",
    "postfix/qmgr",
    "postfix-out/lmtp[2]",
    "postfixfoo",
    "sshd[2]",
    "postfix/smtpd[1] x",
    "k",
]
WORDS = ["4F3A2B1C9D", "5A1B2C3D4E", "NOQUEUE", "ABCD", "ABCDEFGHIJKLMNOPQRSTU", "\u00c4BC123", "statistics", "client"]
RESTS = [
    DELIVERY,
    DELIVERY.replace("status=sent", "status=deferred"),
    DELIVERY.replace("2.0.0, status=sent", "5.1.1, status=bounced"),
    "to=<a@acme.com>, relay=s, delay=1, status=bounced (x said: 550 5.1.1 no (in reply to RCPT TO command))",
    "removed",
    "message-id=<m1@x.test>",
    "from=<s@x.test>, size=1, nrcpt=2 (queue active)",
    "from=<s@x.test>, status=expired, returned to sender",
    "from=<broken",
    "client=x[192.0.2.9]",
    REJECT,
    "milter-" + REJECT,
    "sender non-delivery notification: 5A1B2C3D4E",
    "to=<a@acme.com>\r, relay=s, dsn=2.0.0, status=sent",
    "connect from x[192.0.2.9]",
]

line_texts = st.one_of(
    st.builds(
        lambda stamp, host, program, sep, word, colon, rest, end: (
            f"{stamp} {host} {program}{sep}{word}{colon}{rest}{end}"
        ),
        st.sampled_from(STAMPS),
        st.sampled_from(HOSTS),
        st.sampled_from(PROGRAMS),
        st.sampled_from([": ", ":", " "]),
        st.sampled_from(WORDS),
        st.sampled_from([": ", ":"]),
        st.one_of(st.sampled_from(RESTS), st.text(max_size=40)),
        st.sampled_from(["", "\r", "\r\r", " "]),
    ),
    st.text(max_size=60),
)
lines = st.one_of(
    line_texts.map(lambda text: text.replace("\n", " ").encode("utf-8", "surrogatepass")),
    st.binary(max_size=60).map(lambda raw: raw.replace(b"\n", b" ")),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    content=st.lists(lines, min_size=1, max_size=60),
    unfinished=st.booleans(),
    batch_lines=st.integers(1, 40),
    chunk_bytes=st.sampled_from([64, 700, 1 << 20]),
)
@example(
    content=[f"Nov 27 08:14:31 mx1 postfix/smtp[1]: 4F3A2B1C9D: {DELIVERY}".encode()] * 3,
    unfinished=True,
    batch_lines=2,
    chunk_bytes=64,
)
def test_scanner_reads_what_the_line_reader_reads(
    monkeypatch: pytest.MonkeyPatch, content: list[bytes], unfinished: bool, batch_lines: int, chunk_bytes: int
) -> None:
    monkeypatch.setattr(files, "CHUNK_BYTES", chunk_bytes)
    with tempfile.TemporaryDirectory() as directory:
        log = Path(directory) / "mail.log"
        log.write_bytes(b"\n".join(content) + (b"" if unfinished else b"\n"))
        line_batches, scanned_batches = both(log, batch_lines=batch_lines)
    assert scanned_batches == line_batches
