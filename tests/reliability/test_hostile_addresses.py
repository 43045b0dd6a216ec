"""A hostile sender's addresses and fields: counted invalid or made storable, never a failed run.

Before, one recipient with a 330-character local part (Postfix accepts and logs it) or a NUL
in an address stopped ingest on PostgreSQL (``StringDataRightTruncation`` / ``DataError``)
and every later sync exited 3. SQLite took the same log. Each test runs on SQLite and
PostgreSQL (``state_url``); the last one sends the long recipient through a real Postfix.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from freezegun import freeze_time

from connector.cli import main
from connector.cli.common import EXIT_OK
from connector.store.database import make_engine
from tests.conftest import utc
from tests.mailflow import MailFlow, real_postfix, send, wait_for
from tests.postgres import PostgresServer

T0 = utc("2026-11-20T10:00:00")
LONG = "x" * 330 + "@acme.com"
NUL = "a\x00b@acme.com"
LDIF = """\
version: 1

dn: uid=alice,ou=people,dc=acme,dc=com
objectClass: inetOrgPerson
uid: alice
cn: Alice
sn: Archer
displayName: Alice Archer
mail: alice@acme.com
entryUUID: 1b5ffddb-04bc-5da0-90fa-609cce6c07a3

dn: uid=bob,ou=people,dc=acme,dc=com
objectClass: inetOrgPerson
uid: bob
cn: Bob
sn: Baker
displayName: Bob Baker
mail: bob@acme.com
entryUUID: 2b5ffddb-04bc-5da0-90fa-609cce6c07a3
"""


def write_config(tmp_path: Path, state_url: str) -> Path:
    (tmp_path / "dir.ldif").write_text(LDIF)
    path = tmp_path / "connector.yaml"
    path.write_text(
        f"state: {{url: '{state_url}'}}\n"
        "sources: [{name: gw, path: mail.log}]\n"
        "domains: {acme.com: {org: Acme, method: smartcreate}}\n"
        "directory: {type: ldif, path: dir.ldif, schema_preset: openldap}\n"
    )
    return path


def sync(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:  # type: ignore[type-arg]
    code = main(["sync", "-c", str(config), "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def stored_text(state_url: str) -> str:
    """Every address-like value the state holds, in one text (to look for what must not be there)."""
    engine = make_engine(state_url)
    try:
        with engine.connect() as connection:
            parts = [
                str(row)
                for table in ("evidence", "candidates", "event_log", "target_users")
                for row in connection.execute(sa.text(f"SELECT * FROM {table}"))  # fixed table names
            ]
    finally:
        engine.dispose()
    return "\n".join(parts)


def test_long_and_nul_addresses_are_counted_invalid_and_every_sync_goes_on(
    state_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = MailFlow(relays={"acme.com": "mx.acme.com[192.0.2.10]:25"})
    for hour in range(3):
        at = T0 + timedelta(hours=hour)
        flow.deliver(at, LONG)
        flow.deliver(at, NUL)
        # alice's messages carry a stranger's NUL in the sender, the message-id and the reply.
        flow.deliver(at, "alice@acme.com", sender=f"s{hour}\x00@partner.test", message_id=f"m{hour}\x00@x.test")
        flow.deliver(at, "alice@acme.com", reply="250 2.0.0 \x00 Ok: queued as " + "Q" * 2000)
    flow.write(tmp_path / "mail.log")
    config = write_config(tmp_path, state_url)

    with freeze_time(T0 + timedelta(days=1)):
        code, report = sync(config, capsys)
    assert code == EXIT_OK, report.get("errors")
    assert report["status"] == "ok" and [c["address"] for c in report["created"]] == ["alice@acme.com"]
    assert "6 delivery(ies) to unparseable addresses" in " ".join(report["warnings"])
    stored = stored_text(state_url)
    assert "x" * 321 not in stored and "\x00" not in stored and "a\\x00b" not in stored
    assert "alice@acme.com" in stored

    # Later syncs are fine: more of the same, and a new user still gets created.
    for hour in range(3):
        at = T0 + timedelta(days=1, hours=hour)
        flow.deliver(at, LONG)
        flow.deliver(at, "bob@acme.com", sender="b\x00@partner.test")
    flow.write(tmp_path / "mail.log")
    with freeze_time(T0 + timedelta(days=2)):
        code, report = sync(config, capsys)
    assert code == EXIT_OK and report["status"] == "ok"
    assert [c["address"] for c in report["created"]] == ["bob@acme.com"]
    assert "3 delivery(ies) to unparseable addresses" in " ".join(report["warnings"])
    with freeze_time(T0 + timedelta(days=2)):
        assert main(["explain", "-c", str(config), "alice@acme.com"]) == EXIT_OK
    explained = capsys.readouterr().out
    assert "from s0\ufffd@partner.test" in explained and "\x00" not in explained


def test_a_330_character_recipient_through_a_real_postfix_ingests_on_postgresql(
    postgres: PostgresServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    long_recipient = "y" * 330 + "@example.com"
    state_url = postgres.create_database()
    with real_postfix() as gateway:
        for subject in ("one", "two", "three"):
            send(gateway.port, ["alice@example.com", long_recipient], subject)
        text = wait_for(gateway.maillog, [f"to=<{long_recipient}>", "sender non-delivery notification"])
        assert text.count("to=<alice@example.com>") >= 1
        (tmp_path / "dir.ldif").write_text(LDIF.replace("acme.com", "example.com"))
        config = tmp_path / "connector.yaml"
        config.write_text(
            f"state: {{url: '{state_url}'}}\n"
            f"sources: [{{name: gw, path: '{gateway.maillog}', timezone: UTC}}]\n"
            "domains: {example.com: {org: Example, method: smartcreate}}\n"
            "directory: {type: ldif, path: dir.ldif, schema_preset: openldap}\n"
        )
        code, report = sync(config, capsys)
        assert code == EXIT_OK, report.get("errors")
        warnings = " ".join(report["warnings"])
        assert "delivery(ies) to unparseable addresses" in warnings and "yyyyyyyy" in warnings
        seen = text.count(f"to=<{long_recipient}>")
        send(gateway.port, [long_recipient], "four")  # and again: the next sync is fine too
        deadline = time.monotonic() + 30
        while gateway.maillog.read_text(errors="replace").count(f"to=<{long_recipient}>") <= seen:
            assert time.monotonic() < deadline, "Postfix did not log the fourth message"
            time.sleep(0.2)
        code, report = sync(config, capsys)
        assert code == EXIT_OK and report["status"] == "ok"
    assert "y" * 321 not in stored_text(state_url)
