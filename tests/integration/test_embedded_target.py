"""The embedded compliance directory: idempotent writes, never a second user."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connector.compliance.base import NewUser
from connector.compliance.dry_run import DryRunComplianceDirectory
from connector.compliance.embedded import EmbeddedComplianceDirectory
from connector.errors import SkippableError
from connector.store.database import make_engine, make_sessionmaker, upgrade
from tests.conftest import utc


@pytest.fixture
def target(state_url: str) -> Iterator[EmbeddedComplianceDirectory]:
    engine = make_engine(state_url)
    upgrade(engine)
    yield EmbeddedComplianceDirectory(make_sessionmaker(engine), lambda: utc("2026-11-27T00:00:00"))
    engine.dispose()


def test_create_is_idempotent_and_lands_in_its_org(target: EmbeddedComplianceDirectory) -> None:
    bob = NewUser("bob@acme.com", "Acme", ("robert@acme.com",), "Bob Baker", "uuid-1")
    assert target.create_user(bob) is True
    assert target.create_user(bob) is False
    assert target.users_by_org() == {"Acme": [("bob@acme.com", ["robert@acme.com"])]}
    known = target.known_addresses()
    assert known.users == ("bob@acme.com",) and known.aliases == {"robert@acme.com": "bob@acme.com"}


def test_aliases(target: EmbeddedComplianceDirectory) -> None:
    target.create_user(NewUser("bob@acme.com", "Acme"))
    target.create_user(NewUser("eve@acme.com", "Acme"))
    assert target.add_alias("bob@acme.com", "robert@acme.com") is True
    assert target.add_alias("bob@acme.com", "robert@acme.com") is False
    with pytest.raises(SkippableError, match="already held by another user"):
        target.add_alias("eve@acme.com", "robert@acme.com")
    with pytest.raises(SkippableError, match="no user"):
        target.add_alias("nobody@acme.com", "x@acme.com")
    with pytest.raises(SkippableError, match="already an alias"):
        target.create_user(NewUser("robert@acme.com", "Acme"))


def test_dry_run_wrapper_writes_nothing(target: EmbeddedComplianceDirectory) -> None:
    dry = DryRunComplianceDirectory(target)
    dry.ensure_org("Acme")
    dry.create_user(NewUser("bob@acme.com", "Acme"))
    dry.add_alias("bob@acme.com", "robert@acme.com")
    assert dry.planned == [
        "ensure org Acme",
        "create bob@acme.com in Acme",
        "add alias robert@acme.com to bob@acme.com",
    ]
    assert target.users_by_org() == {}
