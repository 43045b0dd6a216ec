"""End to end with a real Postfix (Debian package) on 127.0.0.1.

The harness (``tests.mailflow.real_postfix``) starts Postfix with its own configuration
in a temp dir (own queue, ``maillog_file`` via postlogd, no chroot), relaying to an
aiosmtpd server that answers 250 for known users and ``550 5.1.1`` for others. The
tests send mail with smtplib and read the log Postfix wrote.
"""

from __future__ import annotations

import smtplib
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from connector.cli import main
from connector.domain.events import DeliveryEvent, DeliveryStatus
from connector.domain.evidence import AddressEvidence, Delivery
from connector.policy.evidence import record_events
from connector.sources.base import SourceBatch
from connector.sources.formats import log_source
from connector.store import repository
from connector.store.database import make_engine, make_sessionmaker
from tests.mailflow import (  # noqa: F401  (re-exported: older tests import the harness from here)
    EXPIRE_AT_ONCE,
    KNOWN,
    MAIN_CF,
    MASTER_CF,
    Downstream,
    RealPostfix,
    free_port,
    real_postfix,
    send,
    wait_for,
)


@pytest.fixture
def postfix() -> Iterator[tuple[int, Path]]:
    """``(smtpd port, maillog)`` of a running real Postfix."""
    with real_postfix() as running:
        yield running.port, running.maillog


@pytest.fixture
def gateway() -> Iterator[RealPostfix]:
    with real_postfix() as running:
        yield running


def test_real_postfix_log_is_ingested(postfix: tuple[int, Path], tmp_path: Path) -> None:
    port, maillog = postfix
    send(port, ["alice@example.com"], "one")
    send(port, ["alice@example.com", "nouser@example.com", "bob@example.com"], "two")
    wait_for(maillog, ["to=<nouser@example.com>", "sender non-delivery notification", "to=<sender@partner.test>"])
    time.sleep(0.5)  # let the last lines of the NDR's delivery land

    events = [e for b in log_source("postfix", "gw", maillog).read(None) for e in b.events]
    got = {(e.recipient, e.status) for e in events}
    assert ("alice@example.com", DeliveryStatus.SENT) in got
    alice = [e for e in events if e.recipient == "alice@example.com"]
    assert len({e.message_id for e in alice}) == 2 and all(e.reply_class == 2 for e in alice)
    [nouser] = [e for e in events if e.recipient == "nouser@example.com"]
    assert nouser.status is DeliveryStatus.BOUNCED and nouser.rcpt_stage and nouser.dsn == "5.1.1"
    [ndr] = [e for e in events if e.recipient == "sender@partner.test"]
    assert ndr.null_sender and ndr.ndr_for == nouser.queue_id and ndr.ndr_recipients == ("nouser@example.com",)

    (tmp_path / "dir.ldif").write_text("")
    config = tmp_path / "connector.yaml"
    config.write_text(
        f"state: {{url: 'sqlite:///{tmp_path}/state.sqlite'}}\n"
        f"sources: [{{name: gw, path: '{maillog}', timezone: UTC}}]\n"
        "domains: {example.com: {org: Example, method: smartcreate}, partner.test: {org: P, method: autocreate}}\n"
        "directory: {type: ldif, path: dir.ldif}\n"
    )
    assert main(["ingest", "-c", str(config)]) == 0
    engine = make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    with make_sessionmaker(engine)() as session:
        rows = repository.load_evidence(session, ["alice@example.com", "sender@partner.test", "nouser@example.com"])
    engine.dispose()
    assert len({d.message_key for d in rows["alice@example.com"].recent}) == 2  # two distinct messages counted
    assert rows["sender@partner.test"].recent == ()  # the NDR counts for nobody
    assert rows["sender@partner.test"].accepted_at is None
    assert rows["nouser@example.com"].invalidated_at is not None


def refuse_bdat(port: int) -> tuple[int, bytes]:
    """A null-sender message to two recipients sent with BDAT: ``reject_multi_recipient_bounce``."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.partner.test")
        client.mail("")
        client.rcpt("alice@example.com")
        client.rcpt("bob@example.com")
        client.send(b"BDAT 5 LAST\r\nhello")
        return client.getreply()


def refused_by_postscreen(port: int) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.partner.test")
        client.mail("sender@partner.test")
        return client.rcpt("alice@example.com")


def read_until(maillog: Path, done: Callable[[list[DeliveryEvent]], bool], timeout: float = 30) -> list[SourceBatch]:
    """The log read from the start, once its events satisfy ``done`` (Postfix logs asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        batches = list(log_source("postfix", "gw", maillog).read(None))
        if done([e for b in batches for e in b.events]):
            return batches
        if time.monotonic() > deadline:
            raise AssertionError(f"not all events logged in {timeout}s:\n{maillog.read_text()[-3000:]}")
        time.sleep(0.2)


def test_real_refusals_and_verify_probes_are_read_exactly(gateway: RealPostfix) -> None:
    """smtpd refusing one recipient of a message whose queue file is open (``QID: reject:
    RCPT``), verify(8) probes (cached and not), postscreen's comma-separated reject and a
    refusal at BDAT, all as the real Postfix writes them."""
    refused = send(gateway.port, ["alice@example.com", "ghost@example.net", "dave@example.net"], "table")
    assert {a: code for a, (code, _) in refused.items()} == {"ghost@example.net": 550}
    refused = send(gateway.port, ["carol@example.org", "ghost@example.org", "ghost@nocache.example.org"], "verify")
    assert {a: code for a, (code, _) in refused.items()} == {"ghost@example.org": 550, "ghost@nocache.example.org": 450}
    assert refuse_bdat(gateway.port)[0] == 550
    assert refused_by_postscreen(gateway.screen_port)[0] == 550
    batches = read_until(gateway.maillog, lambda events: sum(not e.probe for e in events) >= 7)
    assert sum(b.stats.bad_lines for b in batches) == 0 and sum(b.stats.foreign_lines for b in batches) == 0
    # Postfix 3.7 names no recipient at BDAT: read, no event (not among the events below)
    assert ": reject: BDAT from localhost[127.0.0.1]: 550 5.5.3 " in gateway.maillog.read_text()
    events = [e for b in batches for e in b.events]
    got = sorted((e.recipient, e.status.value, e.probe, e.rcpt_stage, e.dsn, e.reply, e.sender) for e in events)
    user_unknown = "Recipient address rejected: User unknown"
    downstream_said = f"host 127.0.0.1[127.0.0.1] said: 550 5.1.1 <ghost@example.org>: {user_unknown}"
    probe_sender = "double-bounce@mx1.gateway.test"
    assert got == sorted(
        [
            ("alice@example.com", "sent", False, False, "2.0.0", "250 2.0.0 Ok: queued", "sender@partner.test"),
            ("dave@example.net", "sent", False, False, "2.0.0", "250 2.0.0 Ok: queued", "sender@partner.test"),
            (
                "ghost@example.net",
                "rejected",
                False,
                True,
                "5.1.1",
                f"550 5.1.1 <ghost@example.net>: {user_unknown} in relay recipient table",
                "sender@partner.test",
            ),
            ("carol@example.org", "sent", True, False, "2.1.5", "250 2.1.5 Ok", probe_sender),
            ("carol@example.org", "sent", False, False, "2.0.0", "250 2.0.0 Ok: queued", "sender@partner.test"),
            (
                "ghost@example.org",
                "bounced",
                True,
                True,
                "5.1.1",
                f"550 5.1.1 <ghost@example.org>: {user_unknown}",
                probe_sender,
            ),
            (
                "ghost@example.org",
                "rejected",
                False,
                True,
                "5.1.1",
                "550 5.1.1 <ghost@example.org>: Recipient address rejected: undeliverable address: "
                f"{downstream_said} (in reply to RCPT TO command)",
                "sender@partner.test",
            ),
            (
                "ghost@nocache.example.org",  # status=undeliverable-but-not-cached
                "bounced",
                True,
                True,
                "5.1.1",
                f"550 5.1.1 <ghost@nocache.example.org>: {user_unknown}",
                probe_sender,
            ),
            (
                "ghost@nocache.example.org",
                "rejected",
                False,
                True,
                "4.1.1",
                "450 4.1.1 <ghost@nocache.example.org>: Recipient address rejected: unverified address: "
                "Address verification in progress",
                "sender@partner.test",
            ),
            # postscreen: "from=<...>, to=<...>, proto=ESMTP, helo=<...>"
            (
                "alice@example.com",
                "rejected",
                False,
                True,
                "5.3.2",
                "550 5.3.2 Service currently unavailable",
                "sender@partner.test",
            ),
        ]
    )
    # The refusal carries the queue id of the message it belongs to; postscreen has none.
    by_key = {
        (e.recipient, e.status, e.probe): e for e in events if e.reply != "550 5.3.2 Service currently unavailable"
    }
    sent, rejected = DeliveryStatus.SENT, DeliveryStatus.REJECTED
    assert by_key["ghost@example.net", rejected, False].queue_id == by_key["alice@example.com", sent, False].queue_id
    assert by_key["ghost@example.org", rejected, False].queue_id == by_key["carol@example.org", sent, False].queue_id
    assert [e.queue_id for e in events if e.reply == "550 5.3.2 Service currently unavailable"] == [None]
    # ... and it is a refusal at RCPT TO for the evidence, as a NOQUEUE reject is.
    ghost = record_events(
        AddressEvidence("ghost@example.net"),
        [(e, None) for e in events if e.recipient == "ghost@example.net"],
        threshold=1,
        window=timedelta(days=14),
    )
    assert ghost.refused_at_rcpt and ghost.invalidated_at is not None


def test_real_deferral_and_expiry_are_read_and_count_for_nothing() -> None:
    """The downstream answers ``451 4.3.0`` at RCPT: Postfix defers the recipient, and with
    a queue lifetime of 0 its qmgr returns the message at once (``status=expired``). Both
    are read exactly; neither is a valid message nor a failure of the address."""
    with real_postfix(main_cf_extra=EXPIRE_AT_ONCE) as gateway:
        assert send(gateway.port, ["tempfail@example.com"], "busy") == {}
        batches = read_until(
            gateway.maillog,
            lambda events: (
                any(e.status is DeliveryStatus.EXPIRED for e in events)
                and any(e.is_notification and e.status is DeliveryStatus.SENT for e in events)
            ),
        )
        log = gateway.maillog.read_text()
    assert ", dsn=4.3.0, status=deferred (host 127.0.0.1[127.0.0.1] said: 451 4.3.0 " in log
    assert ": from=<sender@partner.test>, status=expired, returned to sender\n" in log
    assert sum(b.stats.bad_lines for b in batches) == 0 and sum(b.stats.foreign_lines for b in batches) == 0
    events = [e for b in batches for e in b.events]
    got = [(e.recipient, e.status.value, e.dsn, e.reply, e.rcpt_stage, e.sender) for e in events]
    assert got == [
        (
            "tempfail@example.com",
            "deferred",
            "4.3.0",
            "451 4.3.0 <tempfail@example.com>: Mailbox temporarily unavailable",
            True,
            "sender@partner.test",
        ),
        ("tempfail@example.com", "expired", "4.4.7", "message expired in the queue", False, "sender@partner.test"),
        ("sender@partner.test", "sent", "2.0.0", "250 2.0.0 Ok: queued", False, ""),
    ]
    deferred, expired, ndr = events
    assert deferred.queue_id == expired.queue_id and deferred.message_id == expired.message_id is not None
    assert ndr.ndr_for == expired.queue_id and ndr.ndr_recipients == ("tempfail@example.com",)

    # An earlier valid message stays counted; the deferral and the expiry add and void nothing.
    earlier = Delivery("earlier@partner.test", deferred.at - timedelta(hours=1))
    before = AddressEvidence("tempfail@example.com", recent=(earlier,))
    after = record_events(before, [(deferred, None), (expired, None)], threshold=3, window=timedelta(days=14))
    assert after.recent == (earlier,) and after.qualified_at is None
    assert after.invalidated_at is None and after.rejected_at is None and after.accepted_at is None
    assert not after.refused_at_rcpt and after.events_seen == 2
