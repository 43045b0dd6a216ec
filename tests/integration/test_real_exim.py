"""End to end with a real Exim 4 (Debian ``exim4-daemon-light``) on 127.0.0.1.

``tests/exim_server.py`` starts Exim with its own configuration (relay, local,
virtual and alias routers, a RCPT ACL, AUTH PLAIN) in front of an aiosmtpd
downstream that answers 250 for known users, 451 for ``later@`` and
``550 5.1.1`` for the rest. The test sends mail with smtplib and asserts that
the decoder reads the main log Exim wrote into exactly the expected events:
relayed deliveries, local and virtual mailbox deliveries, a bounce and Exim's
NDR for it, a deferral, and every ``rejected RCPT`` shape (reason, none,
``temporarily``, ``A=plain`` after ``F=``, an unbracketed address).
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from connector.domain.events import DeliveryEvent
from connector.domain.evidence import AddressEvidence
from connector.policy.evidence import is_address_failure, record_events
from connector.sources.formats import log_source
from tests.exim_server import AUTH_PASSWORD, AUTH_USER, EximServer, exim_server
from tests.smtp_peers import LoopbackController, PeerHandler

SENDER = "sender@partner.test"
KNOWN = {"alice@acme.test", "bob@acme.test", SENDER}
ZONE = "Asia/Tokyo"  # Exim logs local time: the decoder must turn it into UTC


class Downstream(PeerHandler):
    """250 for known users, 451 (greylisting) for ``later@``, 550 5.1.1 for the rest."""

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address.startswith("later@"):
            return "451 4.3.0 Try again later"
        return await super().handle_RCPT(server, session, envelope, address, options)


@pytest.fixture
def exim() -> Iterator[EximServer]:
    downstream = LoopbackController(Downstream(KNOWN), hostname="127.0.0.1")
    downstream.start()
    try:
        with exim_server(downstream.port, timezone=ZONE) as server:
            yield server
    finally:
        downstream.stop()


def send(port: int, recipients: list[str], message_id: str, *, login: bool = False) -> dict[str, Any]:
    """One message; returns the recipients Exim refused at RCPT TO."""
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = ", ".join(recipients)
    message["Subject"] = message_id
    message["Message-ID"] = f"<{message_id}@partner.test>"
    message.set_content("hello")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        if login:
            client.ehlo()
            client.login(AUTH_USER, AUTH_PASSWORD)
        return dict(client.send_message(message, from_addr=SENDER, to_addrs=recipients))


def shape(event: DeliveryEvent) -> tuple[Any, ...]:
    """What the policy reads from an event (queue ids and times are checked apart)."""
    return (
        event.status.value,
        event.recipient,
        event.sender,
        event.message_id,
        event.relay,
        event.reply,
        event.dsn,
        event.rcpt_stage,
        event.ndr_for is not None,
    )


RELAY = "127.0.0.1 [127.0.0.1]"
OK = "250 2.0.0 Ok"
EXPECTED = sorted(
    [
        # m1: relayed to the downstream; nouser refused at RCPT TO (bounce), later deferred
        ("sent", "alice@acme.test", SENDER, "m1@partner.test", RELAY, OK, "2.0.0", False, False),
        ("sent", "bob@acme.test", SENDER, "m1@partner.test", RELAY, OK, "2.0.0", False, False),
        (
            "bounced",
            "nouser@acme.test",
            SENDER,
            "m1@partner.test",
            RELAY,
            "550 5.1.1 <nouser@acme.test>: Recipient address rejected: User unknown",
            "5.1.1",
            True,
            False,
        ),
        (
            "deferred",
            "later@acme.test",
            SENDER,
            "m1@partner.test",
            RELAY,
            "451 4.3.0 Try again later",
            "4.3.0",
            True,
            False,
        ),
        # Exim's own NDR for nouser, delivered to the sender: linked, null sender
        ("sent", SENDER, "", None, RELAY, OK, "2.0.0", False, True),
        # m2: local and virtual mailboxes log "=> local_part <address>"; the address wins.
        # devnull (:blackhole:), archive (/dev/null) and ticket (|/bin/cat) are no mailboxes.
        ("sent", "test_user@example.com", SENDER, "m2@partner.test", "local_user", None, None, False, False),
        ("sent", "postmaster@example.com", SENDER, "m2@partner.test", "local_user", None, None, False, False),
        ("sent", "carol@virtual.test", SENDER, "m2@partner.test", "virtual_user", None, None, False, False),
        # m3: the gateway's own refusals at RCPT TO, then the one accepted recipient
        ("rejected", "nobody@example.com", SENDER, None, None, "550 Unrouteable address", None, True, False),
        ("rejected", "someone@elsewhere.test", SENDER, None, None, "550 relay not permitted", None, True, False),
        ("rejected", "gone@example.com", SENDER, None, None, "550 This person left", None, True, False),
        (
            "rejected",
            "greylist@acme.test",
            SENDER,
            None,
            None,
            "451 4.7.1 Greylisted, try again later",
            "4.7.1",
            True,
            False,
        ),
        ("rejected", "silent@example.com", SENDER, None, None, "550 Administrative prohibition", None, True, False),
        ("rejected", "dave@virtual.test", SENDER, None, None, "550 Unrouteable address", None, True, False),
        ("sent", "alice@acme.test", SENDER, "m3@partner.test", RELAY, OK, "2.0.0", False, False),
        # m4: an authenticated client (A=plain:submit between F= and the verb)
        ("rejected", "nobody3@example.com", SENDER, None, None, "550 Unrouteable address", None, True, False),
        ("sent", "alice@acme.test", SENDER, "m4@partner.test", RELAY, OK, "2.0.0", False, False),
        # RCPT TO:nobody2@example.com without angle brackets
        ("rejected", "nobody2@example.com", SENDER, None, None, "550 Unrouteable address", None, True, False),
    ]
)


def test_real_exim_main_log_is_read_exactly(exim: EximServer) -> None:
    started_at = datetime.now(UTC) - timedelta(seconds=1)
    assert send(exim.port, ["alice@acme.test", "bob@acme.test", "nouser@acme.test", "later@acme.test"], "m1") == {}
    local = ["test_user", "postmaster", "devnull", "archive", "ticket"]
    assert send(exim.port, [f"{name}@example.com" for name in local] + ["carol@virtual.test"], "m2") == {}
    refused = ["nobody@example.com", "someone@elsewhere.test", "gone@example.com", "greylist@acme.test"]
    refused += ["silent@example.com", "dave@virtual.test"]
    assert set(send(exim.port, ["alice@acme.test", *refused], "m3")) == set(refused)
    assert set(send(exim.port, ["alice@acme.test", "nobody3@example.com"], "m4", login=True)) == {"nobody3@example.com"}
    with smtplib.SMTP("127.0.0.1", exim.port, timeout=10) as client:
        client.ehlo()
        client.mail(SENDER)
        assert client.docmd("RCPT", "TO:nobody2@example.com")[0] == 550
    # m2, m3, m4 and the NDR complete; m1 stays queued for later@ (deferred)
    text = exim.wait_for_log(
        lambda log: log.count(" Completed") == 4 and " == later@acme.test" in log and "nobody2@" in log,
        "four completed messages and the deferral",
    )
    finished_at = datetime.now(UTC) + timedelta(seconds=1)
    assert "rejected RCPT nobody2@example.com" in text and "A=plain:submit rejected RCPT" in text
    assert " temporarily rejected RCPT <greylist@acme.test>" in text and "Completed QT=" in text

    batches = list(log_source("exim", "gw", exim.mainlog, timezone=ZoneInfo(ZONE)).read(None))
    events = [e for b in batches for e in b.events]
    assert sum(b.stats.bad_lines for b in batches) == 0, [x.text for b in batches for x in b.stats.bad_line_examples]
    assert sorted(shape(e) for e in events) == EXPECTED
    assert all(started_at <= e.at <= finished_at for e in events), "local time not turned into UTC"

    # The NDR names m1 by its Exim id; every m1 event carries that id.
    m1_ids = {e.queue_id for e in events if e.message_id == "m1@partner.test"}
    [ndr] = [e for e in events if e.ndr_for is not None]
    assert m1_ids == {ndr.ndr_for}
    # "Completed QT=..." ended every queue entry but m1's (still deferred for later@).
    assert set(batches[-1].checkpoint.parser_state["decoder"]["queue"]) == m1_ids


def test_real_exim_outcomes_reach_the_evidence(exim: EximServer) -> None:
    """What the policy makes of the real lines: the 550 5.1.1 bounce voids, the NDR and the
    deferral count for nobody, a local delivery counts for the full address."""
    send(exim.port, ["alice@acme.test", "nouser@acme.test", "later@acme.test"], "e1")
    send(exim.port, ["test_user@example.com", "nouser@acme.test"], "e2")
    exim.wait_for_log(lambda log: log.count(" Completed") >= 2 and log.count(" == later@") == 1, "two messages")
    events = [e for b in log_source("exim", "gw", exim.mainlog, timezone=ZoneInfo(ZONE)).read(None) for e in b.events]
    by_address: dict[str, list[DeliveryEvent]] = {}
    for event in events:
        by_address.setdefault(event.recipient, []).append(event)

    def evidence(address: str) -> AddressEvidence:
        pairs = [(e, None) for e in by_address[address]]
        return record_events(AddressEvidence(address), pairs, threshold=3, window=timedelta(days=14))

    nouser = evidence("nouser@acme.test")
    assert all(is_address_failure(e) for e in by_address["nouser@acme.test"])
    assert nouser.invalidated_at is not None and nouser.rejected_at is not None and nouser.recent == ()
    assert [d.message_key for d in evidence("test_user@example.com").recent] == ["e2@partner.test"]
    assert len(evidence("alice@acme.test").recent) == 1 and evidence("alice@acme.test").accepted_at is not None
    later = evidence("later@acme.test")
    assert later.recent == () and later.invalidated_at is None and later.accepted_at is None
    sender = evidence(SENDER)  # two NDRs (one per bounce), never evidence
    assert len(by_address[SENDER]) == 2 and sender.recent == () and sender.accepted_at is None
