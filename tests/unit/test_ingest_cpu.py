"""Ingest's CPU shortcuts (issue 13, second round): each gives exactly what the plain code gives.

The recipient route without ``AddressMap.map``'s explain steps, the delivery line read with one
pattern, a batch cut found without splitting the block, the fold's reply class and frozen values
built as twins, and the ingest command loading no other job.
"""

from __future__ import annotations

import random
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from connector.cli.ingest_commands import INGEST_LOCKS
from connector.domain.decisions import Method
from connector.domain.events import DeliveryEvent, DeliveryStatus
from connector.domain.evidence import AddressEvidence, Delivery
from connector.policy.addresses import AddressMap, DomainRule, InvalidAddress
from connector.policy.evidence import _delivery, fold_events
from connector.sources.files import after_lines
from connector.sources.postfix import _DELIVERY, _DELIVERY_HEAD, _DSN_STATUS
from jobs.ingest import RecipientCache
from jobs.registry import COMMAND_LOCKS, JOBS
from tests.conftest import utc

T0 = utc("2026-11-02T10:00:00")
ACME = DomainRule("acme.com", "Acme", Method.SMARTCREATE)
LEGACY = DomainRule("legacy.acme.com", "Legacy", Method.AUTOCREATE, strip_subdomains=True)
BUECHER = DomainRule("xn--bcher-kva.example", "Bücher", Method.SMARTCREATE, strip_subdomains=True)


@pytest.mark.parametrize(
    "recipient",
    [
        "ann@acme.com",
        "Ann@ACME.com",
        "<ann@acme.com>",
        " ann@acme.com ",
        "ann@acme.net",
        "bob@mail.legacy.acme.com",
        "bob@x.mail.legacy.acme.com",
        "bob@legacy.acme.net",
        "carl@mail.acme.com",
        "jürgen@bücher.example",
        "jürgen@Post.Bücher.Example",
        "dora@globex.test",
        "Dora@Globex.TEST.",
        "no address",
        "@acme.com",
        "ann@",
        "a b@acme.com",
        "ann@acme.com\x00",
        "ann@\ud800.com",
        "x" * 65 + "@acme.com",
        "ann@" + "a" * 64 + ".com",
    ],
)
def test_the_recipient_cache_routes_as_the_address_map_maps(recipient: str) -> None:
    address_map = AddressMap(
        {"acme.com": ACME, "legacy.acme.com": LEGACY, "bücher.example": BUECHER},
        {"acme.net": "acme.com", "legacy.acme.net": "legacy.acme.com"},
    )
    route = RecipientCache(address_map).add(recipient)
    try:
        mapped = address_map.map(recipient)
    except InvalidAddress:
        assert route is None
        return
    seen_as = recipient.lower() if recipient.lower() != mapped.address else None
    assert route == (mapped.address, mapped.rule, mapped.domain, seen_as)


def _stepwise(rest: str) -> tuple[tuple[str | None, ...], int] | None:
    """The head, then the first ``dsn=`` after it that reads (the code ``_DELIVERY`` replaces)."""
    head = _DELIVERY_HEAD.match(rest)
    if head is None:
        return None
    where = head.end()
    while (where := rest.find("dsn=", where)) >= 0:
        found = _DSN_STATUS.match(rest, where)
        if found is not None:
            return (*head.group(1, 2, 3), found.group(1), found.group(2)), found.end()
        where += 4
    return None


PIECES = [
    "to=<",
    "orig_to=<",
    ">, ",
    ">",
    "<",
    ", ",
    ",",
    "relay=",
    "mx[10.0.0.1]:25",
    "dsn=",
    "dsn=5.1.1",
    "2.0.0",
    "4.4.1234",
    ", status=",
    "status=",
    "sent",
    "deferred",
    "bounced-x",
    " (250 ok)",
    "ann@acme.com",
    "x",
    " ",
    "\n",
    "\r",
    "é",
    "٣",
    "delay=1, ",
]


def _delivery_rest(rng: random.Random) -> str:
    """A delivery line's text after ``QID: ``, from the grammar's pieces, then damaged at random."""
    parts = ["to=<", rng.choice(["ann@acme.com", "", "a>b", "é@x"]), ">, "]
    if rng.random() < 0.3:
        parts += ["orig_to=<", rng.choice(["o@acme.com", "", "<"]), ">, "]
    parts += ["relay=", rng.choice(["mx[10.0.0.1]:25", "", "a,b", "none"]), ", "]
    parts += [rng.choice(PIECES) for _ in range(rng.randint(0, 4))]
    parts += ["dsn=", rng.choice(["2.0.0", "5.1.1", "4.4.1234", "x.1.1", "٣.0.0"]), ", status="]
    parts += [rng.choice(["sent", "bounced", "deferred", "", "Sent", "undeliverable-but-not-cached"])]
    parts += [rng.choice(PIECES) for _ in range(rng.randint(0, 3))]
    for _ in range(rng.randint(0, 3)):  # damage: a piece dropped, doubled or replaced
        where = rng.randrange(len(parts))
        action = rng.randrange(3)
        if action == 0:
            del parts[where]
        elif action == 1:
            parts.insert(where, parts[where])
        else:
            parts[where] = rng.choice(PIECES)
    return "".join(parts)


def test_the_one_pattern_delivery_reads_as_the_steps() -> None:
    """On lines made of the grammar's own pieces (damaged, repeated, out of order), the one pattern
    matches exactly when the head and a ``dsn=`` after it do, with the same fields and the same end."""
    rng = random.Random(20240304)
    matched = 0
    for _ in range(20_000):
        rest = _delivery_rest(rng)
        both = _DELIVERY.match(rest)
        expected = _stepwise(rest)
        assert ((both.groups(), both.end()) if both else None) == expected, rest
        matched += both is not None
    assert 1000 < matched < 18_000  # readable lines and damaged ones both


def test_a_batch_cut_found_by_counting_is_where_splitting_put_it() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        lines = rng.randint(1, 2000)
        block = b"".join(b"x" * rng.choice([0, 1, 7, 90, 400, 9000]) + b"\n" for _ in range(lines))
        start = rng.choice([0, block.index(b"\n") + 1])
        total = block.count(b"\n", start)
        if total == 0:
            continue
        room = rng.randint(0, total - 1)
        expected = len(block) - len(block[start:].split(b"\n", room)[-1])
        assert after_lines(block, start, room) == expected


def _sent(reply: str | None, minute: int = 0) -> DeliveryEvent:
    return DeliveryEvent(
        at=T0 + timedelta(minutes=minute),
        host="mx1",
        queue_id="Q1",
        message_id=f"m{minute}@partner.test",
        sender="someone@partner.test",
        recipient="ann@acme.com",
        orig_recipient=None,
        relay="mx.acme.com",
        dsn="2.0.0",
        status=DeliveryStatus.SENT,
        reply=reply,
        rcpt_stage=False,
    )


@pytest.mark.parametrize(
    "reply",
    [
        *("250 2.0.0 Ok", "250-first", "251 forwarded", "550 5.1.1 x", "  250 blank first", "250", "250x"),
        *("2500 x", "\u0662\u0665\u0660 digits", "", None, "abc", "25 short", "2\u00e90 x"),
    ],
)
def test_the_fold_takes_an_accept_where_the_reply_class_says_2(reply: str | None) -> None:
    event = _sent(reply)
    folded = fold_events(AddressEvidence("ann@acme.com"), [(event, None, event.message_key)], 3, timedelta(days=14))
    assert (folded.accepted_at is not None) == (event.reply_class == 2)
    assert folded.accepted_reply == (reply if event.reply_class == 2 else None)


def test_values_built_as_twins_are_the_frozen_values() -> None:
    built = _delivery("m1@partner.test", T0)
    assert type(built) is Delivery and built == Delivery("m1@partner.test", T0)
    assert hash(built) == hash(Delivery("m1@partner.test", T0))
    with pytest.raises(AttributeError):
        built.at = T0  # type: ignore[misc]  # frozen, as the class says
    events = [_sent("250 ok", minute) for minute in range(4)]
    folded = fold_events(AddressEvidence("ann@acme.com"), [(e, None, e.message_key) for e in events], 3, timedelta(1))
    assert type(folded) is AddressEvidence
    with pytest.raises(AttributeError):
        folded.revision = 0  # type: ignore[misc]
    expected = AddressEvidence(
        address="ann@acme.com",
        recent=tuple(Delivery(e.message_key, e.at) for e in events[1:]),
        qualified_at=events[2].at,
        qualifying=tuple(Delivery(e.message_key, e.at) for e in events[:3]),
        accepted_at=events[3].at,
        accepted_reply="250 ok",
        accepted_message_key=events[3].message_key,
        first_seen_at=events[0].at,
        last_seen_at=events[3].at,
        events_seen=4,
        revision=4,
    )
    assert folded == expected and repr(folded) == repr(expected)


def test_the_ingest_command_holds_the_ingest_jobs_locks() -> None:
    assert INGEST_LOCKS == JOBS[COMMAND_LOCKS["ingest"].job].locks == JOBS["ingest"].locks


LOADED = """
import sys
from connector.cli import main
code = main(["ingest", "-c", sys.argv[1]])
print(code, " ".join(sorted(m for m in sys.modules if m.split(".")[0] == "jobs")))
"""


def test_ingest_loads_no_other_job(demo_config: Path) -> None:
    """Not the registry, so not the cycle, reconcile, reports ... (adapters load when configured)."""
    done = subprocess.run(
        [sys.executable, "-c", LOADED, str(demo_config)], capture_output=True, text=True, timeout=120, check=True
    )
    code, *loaded = done.stdout.splitlines()[-1].split(" ")
    assert code == "0"
    assert loaded == ["jobs", "jobs.ingest"]
