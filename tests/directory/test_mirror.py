"""The directory mirror in the state database, filled from a real slapd and refreshed incrementally."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from ldap3 import MODIFY_ADD, MODIFY_REPLACE, Connection, Server
from sqlalchemy.orm import Session, sessionmaker

from connector.directory.ldap import LdapDirectory
from connector.directory.mapping import ACTIVE_DIRECTORY
from connector.directory.mirror import MirrorDirectory, newest_mark
from connector.errors import RetriableError
from connector.store.database import make_engine, make_sessionmaker, upgrade
from jobs.directory_mirror import refresh_directory_mirror
from tests.conftest import utc
from tests.directory.conftest import AD_LDIF, reader_options
from tests.directory.slapd import SUFFIX, Slapd, TlsFiles, run_slapd, start_slapd

T0 = utc("2026-11-27T08:00:00")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def slapd(tmp_path: Path, tls_files: TlsFiles) -> Iterator[Slapd]:
    server = start_slapd(tmp_path / "slapd", AD_LDIF, tls_files)
    yield server
    server.stop()


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    upgrade(engine)
    return make_sessionmaker(engine)


def admin(slapd: Slapd) -> Connection:
    return Connection(Server(slapd.ldap_url), f"cn=admin,{SUFFIX}", "admin-secret", auto_bind=True)


def make_mirror(slapd: Slapd, sessions: sessionmaker[Session], clock: Clock) -> tuple[MirrorDirectory, LdapDirectory]:
    ldap = LdapDirectory(reader_options(slapd.ldap_url, change_attribute="modifyTimestamp"), ACTIVE_DIRECTORY)
    mirror = MirrorDirectory(
        ldap,
        ACTIVE_DIRECTORY,
        sessions,
        clock,
        change_attribute="modifyTimestamp",
        max_age=timedelta(hours=1),
        refresh_every=timedelta(minutes=15),
        full_every=timedelta(hours=24),
    )
    return mirror, ldap


ADDRESSES = [
    "alice@acme.com",
    "a.adams@acme.com",
    "bob.old@acme.com",
    "dora@acme.com",
    "info@acme.com",
    "staff@acme.com",
    "carl@acme.com",
    "printer@acme.com",
    "nobody@acme.com",
    "*)(mail=*",
]


def test_mirror_answers_exactly_like_the_server(slapd: Slapd, sessions: sessionmaker[Session]) -> None:
    clock = Clock(T0)
    mirror, ldap = make_mirror(slapd, sessions, clock)
    result = refresh_directory_mirror(mirror, now=T0)
    assert result is not None and result.full and result.entries_total == 7
    assert mirror.lookup(ADDRESSES) == ldap.lookup(ADDRESSES)
    # A plain LDAP directory has no mirror to refresh.
    assert refresh_directory_mirror(ldap, now=T0) is None
    ldap.close()


def test_incremental_refresh_sees_changes_and_full_refresh_sees_deletions(
    slapd: Slapd, sessions: sessionmaker[Session]
) -> None:
    clock = Clock(T0)
    mirror, ldap = make_mirror(slapd, sessions, clock)
    mirror.refresh(T0)
    first_mark = mirror.state().change_mark  # type: ignore[union-attr]
    with admin(slapd) as conn:
        conn.modify(f"cn=Bob Brown,ou=users,{SUFFIX}", {"proxyAddresses": [(MODIFY_ADD, ["smtp:robert@acme.com"])]})
        conn.modify(f"cn=Dora Disabled,ou=users,{SUFFIX}", {"userAccountControl": [(MODIFY_REPLACE, ["512"])]})
        conn.delete(f"cn=PRINTER01,ou=users,{SUFFIX}")

    clock.now = T0 + timedelta(minutes=20)  # refresh due: the lookup refreshes first
    got = mirror.lookup(["robert@acme.com", "dora@acme.com", "printer@acme.com"])
    state = mirror.state()
    assert state is not None and state.full_at == T0 and state.refreshed_at == clock.now
    assert state.change_mark is not None and state.change_mark >= str(first_mark)
    robert, dora = got["robert@acme.com"], got["dora@acme.com"]
    assert robert is not None and robert.primary_address == "bob@acme.com"
    assert dora is not None and dora.enabled
    assert got["printer@acme.com"] is not None  # deletions are only seen by a full read

    clock.now = T0 + timedelta(hours=25)
    result = refresh_directory_mirror(mirror, now=clock.now)
    assert result is not None and result.full and result.entries_total == 6
    assert mirror.lookup(["printer@acme.com"]) == {"printer@acme.com": None}
    ldap.close()


def test_fail_closed_mirror(slapd: Slapd, sessions: sessionmaker[Session], tmp_path: Path) -> None:
    clock = Clock(T0)
    mirror, ldap = make_mirror(slapd, sessions, clock)
    port = int(slapd.ldap_url.rpartition(":")[2])
    slapd.stop()
    with pytest.raises(RetriableError):
        mirror.lookup(["alice@acme.com"])  # never filled and the directory is down

    restarted = run_slapd(slapd.workdir, port=port)
    try:
        assert mirror.lookup(["alice@acme.com"])["alice@acme.com"] is not None  # first use fills it
        restarted.stop()
        clock.now = T0 + timedelta(minutes=30)  # refresh fails, but the copy is fresh enough
        assert mirror.lookup(["alice@acme.com"])["alice@acme.com"] is not None
        clock.now = T0 + timedelta(minutes=61)  # older than max age: defer, never guess
        with pytest.raises(RetriableError, match="max age"):
            mirror.lookup(["alice@acme.com"])
    finally:
        restarted.stop()
        ldap.close()


def test_newest_mark_compares_numbers_as_numbers() -> None:
    assert newest_mark(["99", "100", None]) == "100"
    assert newest_mark(["20261127080000Z", "20261127080001Z"]) == "20261127080001Z"
    assert newest_mark([None]) is None


def usn_user(name: str, usn: int, *aliases: str) -> str:
    lines = [
        f"dn: cn={name},{SUFFIX}",
        "objectClass: person",
        "objectClass: user",
        "objectClass: usnTracked",
        f"cn: {name}",
        f"sn: {name}",
        f"proxyAddresses: SMTP:{name}@acme.com",
        *(f"proxyAddresses: smtp:{a}" for a in aliases),
        "userAccountControl: 512",
        f"uSNChanged: {usn}",
    ]
    return "\n".join(lines) + "\n\n"


def test_incremental_refresh_by_usn_changed_like_active_directory(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    slapd = start_slapd(tmp_path / "usn", usn_user("ann", 9) + usn_user("ben", 10) + usn_user("cat", 12))
    ldap = LdapDirectory(reader_options(slapd.ldap_url, change_attribute="uSNChanged"), ACTIVE_DIRECTORY)
    clock = Clock(T0)
    mirror = MirrorDirectory(
        ldap,
        ACTIVE_DIRECTORY,
        sessions,
        clock,
        change_attribute="uSNChanged",
        max_age=timedelta(hours=1),
        refresh_every=timedelta(minutes=15),
        full_every=timedelta(hours=24),
    )
    try:
        full = mirror.refresh(T0)
        assert full.full and full.entries_total == 3 and full.change_mark == "12"  # 12 > 10 > 9 as numbers
        with admin(slapd) as conn:
            conn.modify(
                f"cn=ann,{SUFFIX}",
                {"proxyAddresses": [(MODIFY_ADD, ["smtp:anna@acme.com"])], "uSNChanged": [(MODIFY_REPLACE, ["100"])]},
            )
        changed = mirror.refresh(T0 + timedelta(minutes=20))
        # Only the boundary object (uSNChanged 12, re-read by >=) and the changed one.
        assert not changed.full and changed.entries_read == 2 and changed.change_mark == "100"
        answer = mirror.lookup(["anna@acme.com"])["anna@acme.com"]
        assert answer is not None and answer.primary_address == "ann@acme.com"
    finally:
        ldap.close()
        slapd.stop()
