"""One message seen through two sources counts once (issue 12: message identity).

Postfix and Exim log Message-IDs without angle brackets, Exchange and JSON lines with
them: before the identity was normalised, the same two real messages seen by two
sources counted as four, and SmartCreate (3 messages) created the user.
Run on SQLite and PostgreSQL, through ``connector sync``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from freezegun import freeze_time

from connector.cli import main
from connector.domain.evidence import AddressEvidence, Delivery
from connector.store import repository
from connector.store.database import make_engine, make_sessionmaker, upgrade
from tests.conftest import utc
from tests.service import service_config

NOW = "2026-11-21T00:00:00Z"


def postfix_message(queue_id: str, message_id: str, minute: int) -> str:
    stamp = f"2026-11-20T10:{minute:02d}"
    return (
        f"{stamp}:00.000000+00:00 mx1 postfix/cleanup[11]: {queue_id}: message-id=<{message_id}>\n"
        f"{stamp}:00.100000+00:00 mx1 postfix/qmgr[12]: {queue_id}: from=<s@partner.test>, size=900, nrcpt=1 "
        "(queue active)\n"
        f"{stamp}:00.200000+00:00 mx1 postfix/smtp[13]: {queue_id}: to=<alice@acme.com>, "
        "relay=mailstore.acme.com[10.0.0.5]:25, delay=0.2, delays=0/0/0/0.2, dsn=2.0.0, "
        "status=sent (250 2.0.0 Ok: queued as 4dmXtKg4R95w77)\n"
        f"{stamp}:00.300000+00:00 mx1 postfix/qmgr[12]: {queue_id}: removed\n"
    )


def jsonl_message(message_id: str, minute: int) -> str:
    event = {
        "at": f"2026-11-20T10:{minute:02d}:01Z",
        "recipient": "alice@acme.com",
        "status": "sent",
        "sender": "s@partner.test",
        "message_id": message_id,
        "reply": "250 2.0.0 Ok",
        "host": "cloud-gw",
    }
    return json.dumps(event) + "\n"


def exim_message(exim_id: str, message_id: str, minute: int) -> str:
    stamp = f"2026-11-20 10:{minute:02d}"
    return (
        f"{stamp}:00 {exim_id} <= s@partner.test H=mx.partner.test [192.0.2.1] P=esmtp S=900 id={message_id}\n"
        f'{stamp}:01 {exim_id} => alice@acme.com R=downstream T=remote_smtp H=store.acme.com [10.0.0.5] C="250 OK"\n'
        f"{stamp}:01 {exim_id} Completed\n"
    )


EXCHANGE_HEADER = (
    "#Software: Microsoft Exchange Server\n#Version: 15.02.1118.007\n#Log-type: Message Tracking Log\n"
    "#Fields: date-time,server-hostname,source,event-id,internal-message-id,message-id,recipient-address,"
    "recipient-status,sender-address,return-path\n"
)


def exchange_message(message_id: str, minute: int) -> str:
    return (
        f"2026-11-20T10:{minute:02d}:02.000Z,EX01,STOREDRIVER,DELIVER,100{minute},{message_id},alice@acme.com,"
        "250 2.0.0 Delivered,s@partner.test,s@partner.test\n"
    )


def configure(demo_config: Path, state_url: str, tmp_path: Path, logs: dict[str, tuple[str, str]]) -> Path:
    """The demo config (alice@acme.com is in its directory; acme.com: SmartCreate, 3 messages
    within 14 days) reading ``logs``: source name -> (format, text)."""
    sources = []
    for name, (fmt, text) in logs.items():
        path = tmp_path / f"{name}.log"
        path.write_text(text)
        sources.append({"name": name, "format": fmt, "path": str(path)})
    return service_config(demo_config, state_url, sources=sources)


def sync(config: Path, capsys: pytest.CaptureFixture[str]) -> dict:  # type: ignore[type-arg]
    with freeze_time(NOW):
        assert main(["sync", "-c", str(config), "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def outcome(report: dict, address: str) -> str:  # type: ignore[type-arg]
    if any(c["address"] == address for c in report["created"]):
        return "created"
    return next(s["reason"] for s in report["skipped"] if s["address"] == address)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (
            (
                "postfix",
                postfix_message("4F3A2B1C90", "m1@partner.test", 1)
                + postfix_message("4F3A2B1C91", "m2@partner.test", 2),
            ),
            ("jsonl", jsonl_message("<m1@Partner.TEST>", 1) + jsonl_message(" <m2@partner.test>", 2)),
        ),
        (
            (
                "exim",
                exim_message("1vOa2b-000Abc-Xy", "m1@partner.test", 1)
                + exim_message("1vOa2c-000Abd-Zz", "m2@PARTNER.test", 2),
            ),
            (
                "exchange",
                EXCHANGE_HEADER + exchange_message("<m1@partner.test>", 1) + exchange_message("<m2@partner.test>", 2),
            ),
        ),
    ],
    ids=["postfix+jsonl", "exim+exchange"],
)
def test_two_messages_seen_by_two_sources_are_two_messages(
    demo_config: Path,
    state_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    first: tuple[str, str],
    second: tuple[str, str],
) -> None:
    config = configure(demo_config, state_url, tmp_path, {"gw-a": first, "gw-b": second})
    report = sync(config, capsys)
    assert [s["events"] for s in report["sources"]] == [2, 2]  # both sources saw both messages
    assert outcome(report, "alice@acme.com") == "below_threshold"  # 2 messages, not 4
    # A third, distinct message qualifies her: the guard above is about identity, not a dead rule.
    with (tmp_path / "gw-b.log").open("a") as log:
        log.write(jsonl_message("<m3@partner.test>", 3) if second[0] == "jsonl" else exchange_message("<m3@x.test>", 3))
    assert outcome(sync(config, capsys), "alice@acme.com") == "created"


def test_evidence_stored_with_bracketed_keys_before_the_upgrade_matches_new_keys(
    demo_config: Path, state_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An older version stored Exchange's and JSON lines' Message-IDs with their brackets.
    engine = make_engine(state_url)
    upgrade(engine)
    old = AddressEvidence(
        "alice@acme.com",
        recent=(
            Delivery("<m1@Partner.test>", utc("2026-11-19T10:00:00")),
            Delivery("<m2@partner.test>", utc("2026-11-19T11:00:00")),
        ),
        first_seen_at=utc("2026-11-19T10:00:00"),
        last_seen_at=utc("2026-11-19T11:00:00"),
        events_seen=2,
        revision=2,
    )
    with make_sessionmaker(engine).begin() as session:
        repository.save_evidence_many(session, [(old, "acme.com")])
    with make_sessionmaker(engine)() as session:
        loaded = repository.load_evidence(session, ["alice@acme.com"])["alice@acme.com"]
    engine.dispose()
    assert [d.message_key for d in loaded.recent] == ["m1@partner.test", "m2@partner.test"]
    # The same two messages again, now through a Postfix gateway (no brackets): still two messages.
    config = configure(
        demo_config,
        state_url,
        tmp_path,
        {
            "mx1": (
                "postfix",
                postfix_message("4F3A2B1C90", "m1@partner.test", 1)
                + postfix_message("4F3A2B1C91", "m2@partner.test", 2),
            )
        },
    )
    report = sync(config, capsys)
    assert report["sources"][0]["events"] == 2
    assert outcome(report, "alice@acme.com") == "below_threshold"
