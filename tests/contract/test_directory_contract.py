"""The ``Directory`` contract (connector/directory/base.py, docs/directory.md), run over every implementation.

One directory (``directory_content.OBJECTS``) is loaded into each: the LDIF export, a real slapd
read by ``LdapDirectory``, the mirror of that slapd in a state database on SQLite and on
PostgreSQL, and the Graph stand-in. Each test asks every implementation the same question and
expects the answer the docs promise. Where an implementation legitimately answers otherwise
(Entra has no shared-mailbox kind and no computer objects) the expectation says so per
implementation, in ``ENTRA_DIFFERS``.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import trustme
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from connector.directory.base import Directory
from connector.directory.graph import GraphDirectory, GraphOptions
from connector.directory.ldap import LdapDirectory
from connector.directory.ldif import LdifDirectory
from connector.directory.mapping import ACTIVE_DIRECTORY, AttributeMapping
from connector.directory.mirror import MirrorDirectory
from connector.domain.directory import DirectoryAnswer, DirectoryEntry, DirectoryObjectKind
from connector.errors import RetriableError
from connector.policy.addresses import normalise_address
from connector.store.database import make_engine, make_sessionmaker
from tests.conftest import utc
from tests.contract.conftest import ContentGraph, StateDatabases
from tests.contract.directory_content import GUID_ALICE, GUID_ERIN, OBJECTS, export_ldif
from tests.directory.conftest import reader_options
from tests.directory.slapd import READER_PASSWORD, Slapd, free_port
from tests.directory.test_graph_directory import TENANT

# ``-auto``: ``schema_preset: auto`` (the default), the preset detected from what the directory holds.
IMPLEMENTATIONS = (
    "ldif",
    "ldif-auto",
    "ldap",
    "ldap-auto",
    "mirror-sqlite",
    "mirror-sqlite-auto",
    "mirror-postgresql",
    "graph",
)
T0 = utc("2026-12-02T08:00:00")
GRAPH_SECRET = "contract-s3cret"


def _all_addresses() -> list[str]:
    """Every address the directory holds, normalised (what the cycle asks with)."""
    found: set[str] = set()
    for item in OBJECTS:
        found.add(normalise_address(item.mail))
        found.update(
            normalise_address(p.partition(":")[2]) for p in item.proxy_addresses if p.lower().startswith("smtp:")
        )
    return sorted(found)


KNOWN = _all_addresses()


@dataclass(frozen=True)
class Answer:
    """What an answer must say (the DN is each implementation's own: not compared)."""

    kind: DirectoryObjectKind
    primary: str | None
    aliases: frozenset[str] = frozenset()
    enabled: bool = True


# Entra ID cannot describe these objects the way AD does: a shared mailbox is a user whose
# sign-in is disabled (no recipient type in Graph), and a computer has no mail object at all.
# Neither can be provisioned either way (not an enabled user).
ENTRA_DIFFERS: dict[str, dict[str, Answer | None]] = {
    "info@acme.com": {
        "graph": Answer(DirectoryObjectKind.USER, "info@acme.com", enabled=False),
        "other": Answer(DirectoryObjectKind.SHARED_MAILBOX, "info@acme.com", enabled=False),
    },
    "printer@acme.com": {
        "graph": None,
        "other": Answer(DirectoryObjectKind.OTHER, "printer@acme.com"),
    },
}


def summary(answer: DirectoryAnswer) -> Answer | None:
    if answer is None:
        return None
    return Answer(answer.kind, answer.primary_address, frozenset(answer.aliases), answer.enabled)


def without_dn(answer: DirectoryAnswer) -> DirectoryAnswer:
    """The answer but its DN (the DN of an ambiguous answer lists its owners in no promised order)."""
    return None if answer is None else dataclasses.replace(answer, dn="")


def one(directory: Directory, address: str) -> DirectoryEntry:
    answers = directory.lookup([address])
    assert list(answers) == [address]
    entry = answers[address]
    assert entry is not None, f"{address} not found"
    return entry


# -- the implementations ------------------------------------------------------------------------------


@dataclass
class Servers:
    """What the implementations are built on."""

    tmp: pytest.TempPathFactory
    request: pytest.FixtureRequest
    slapd: Slapd
    graph: ContentGraph
    graph_ca: Path
    databases: StateDatabases
    engines: list[Engine] = dataclasses.field(default_factory=list)

    def ldif(self, mapping: AttributeMapping | None, path: Path | None = None) -> Directory:
        if path is None:
            path = self.tmp.mktemp("contract-ldif") / "directory.ldif"
            path.write_text(export_ldif(), encoding="utf-8")
        return LdifDirectory(path, mapping)

    def ldap(self, mapping: AttributeMapping | None, url: str | None = None) -> LdapDirectory:
        options = reader_options(
            url or self.slapd.ldap_url, extra_attributes=("department",), connect_timeout_seconds=1
        )
        return LdapDirectory(options, mapping)

    def mirror(self, backend: str, ldap: LdapDirectory, *, own: bool) -> Directory:
        engine = make_engine(self.databases.fresh(self.request, backend, own=own))
        self.engines.append(engine)
        return MirrorDirectory(
            ldap,
            ldap.mapping if ldap.mapping is not None else ldap.resolved_mapping,  # as app.build_directory does
            make_sessionmaker(engine),
            lambda: T0,
            change_attribute="modifyTimestamp",
            max_age=timedelta(hours=1),
            refresh_every=timedelta(minutes=15),
            full_every=timedelta(hours=24),
        )

    def graph_directory(self, base: str | None = None) -> Directory:
        base = base or self.graph.base
        options = GraphOptions(
            tenant_id=TENANT,
            client_id="11111111-2222-3333-4444-555555555555",
            client_secret=SecretStr(GRAPH_SECRET),
            authority_host=base,
            graph_url=base,
            ca_file=str(self.graph_ca),
            timeout_seconds=5,
            max_retries=0,
        )
        return GraphDirectory(options, sleep=lambda _: None)

    def build(self, name: str) -> Directory:
        """The implementation ``name`` over the contract directory."""
        kind, mapping = _parse(name)
        if kind == "ldif":
            return self.ldif(mapping)
        if kind == "ldap":
            return self.ldap(mapping)
        if kind.startswith("mirror-"):
            return self.mirror(kind.removeprefix("mirror-"), self.ldap(mapping), own=True)
        return self.graph_directory()

    def build_unreachable(self, name: str) -> Directory:
        """The implementation ``name`` when its directory cannot be read (never read before)."""
        kind, mapping = _parse(name)
        closed = f"127.0.0.1:{free_port()}"
        if kind == "ldif":
            return self.ldif(mapping, self.tmp.mktemp("contract-ldif-gone") / "directory.ldif")
        if kind == "ldap":
            return self.ldap(mapping, f"ldap://{closed}")
        if kind.startswith("mirror-"):
            return self.mirror(kind.removeprefix("mirror-"), self.ldap(mapping, f"ldap://{closed}"), own=False)
        return self.graph_directory(f"https://{closed}")

    def close(self, directory: Directory) -> None:
        """Close what ``directory`` holds open: its LDAP connection, its state database."""
        for engine in self.engines:
            engine.dispose()
        self.engines.clear()
        close: Callable[[], None] | None = getattr(directory, "close", None)
        if close is not None:
            close()


def _parse(name: str) -> tuple[str, AttributeMapping | None]:
    """``ldap-auto`` -> (``ldap``, None: detect the preset); else the Active Directory preset."""
    if name.endswith("-auto"):
        return name.removesuffix("-auto"), None
    return name, ACTIVE_DIRECTORY


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
    contract_slapd: Slapd,
    contract_graph: ContentGraph,
    graph_ca: tuple[trustme.CA, Path],
    state_databases: StateDatabases,
) -> Servers:
    return Servers(tmp_path_factory, request, contract_slapd, contract_graph, graph_ca[1], state_databases)


@pytest.fixture(scope="module", params=IMPLEMENTATIONS)
def implementation(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def directory(servers: Servers, implementation: str) -> Iterator[Directory]:
    built = servers.build(implementation)
    yield built
    servers.close(built)


# -- the contract ---------------------------------------------------------------------------------


def test_a_person_is_found_by_primary_address_with_everything_the_directory_says(directory: Directory) -> None:
    alice = one(directory, "alice@acme.com")
    assert summary(alice) == Answer(DirectoryObjectKind.USER, "alice@acme.com", frozenset({"a.adams@acme.com"}))
    assert alice.is_user and alice.display_name == "Alice Adams"
    # The same stable id from every kind of directory (docs/directory.md: binary objectGUID as base64).
    assert alice.external_id == base64.b64encode(GUID_ALICE).decode()
    assert alice.attributes.get("department") == ("Sales",)  # what org rules read


def test_an_alias_answers_with_the_person_who_owns_it(directory: Directory) -> None:
    answers = directory.lookup(["a.adams@acme.com", "alice@acme.com", "bob.old@acme.com"])
    assert answers["a.adams@acme.com"] == answers["alice@acme.com"]
    alias = answers["a.adams@acme.com"]
    assert alias is not None and alias.primary_address == "alice@acme.com"
    # The SMTP: proxy address is the primary even when ``mail`` still holds the old one.
    assert summary(answers["bob.old@acme.com"]) == Answer(
        DirectoryObjectKind.USER, "bob@acme.com", frozenset({"bob.old@acme.com"})
    )


def test_an_unknown_address_is_answered_none(directory: Directory) -> None:
    asked = ["nobody@acme.com", "alice@acme.org", "alice@other.acme.com"]
    assert directory.lookup(asked) == dict.fromkeys(asked)


def test_addresses_stored_in_mixed_case_are_found_and_answered_normalised(directory: Directory) -> None:
    answers = directory.lookup(["erin.estrada@acme.com", "ee@acme.com"])
    erin = answers["erin.estrada@acme.com"]
    assert summary(erin) == Answer(DirectoryObjectKind.USER, "erin.estrada@acme.com", frozenset({"ee@acme.com"}))
    assert answers["ee@acme.com"] == erin
    assert erin is not None and erin.external_id == base64.b64encode(GUID_ERIN).decode()


def test_an_address_in_an_internationalised_domain_is_found_by_its_idna_form(directory: Directory) -> None:
    """docs/policies.md: the directory adapters normalise addresses (lower case, IDNA); the cycle asks
    for ``juergen@xn--bcher-kva.example`` whatever form the directory stores."""
    juergen = directory.lookup(["juergen@xn--bcher-kva.example"])["juergen@xn--bcher-kva.example"]
    assert summary(juergen) == Answer(
        DirectoryObjectKind.USER, "juergen@acme.com", frozenset({"juergen@xn--bcher-kva.example"})
    )


def test_a_disabled_account_is_a_user_that_is_not_enabled(directory: Directory) -> None:
    assert summary(one(directory, "dora@acme.com")) == Answer(DirectoryObjectKind.USER, "dora@acme.com", enabled=False)


def test_groups_and_contacts_are_never_users(directory: Directory) -> None:
    answers = directory.lookup(["staff@acme.com", "carl@acme.com"])
    assert summary(answers["staff@acme.com"]) == Answer(DirectoryObjectKind.GROUP, "staff@acme.com")
    # A contact's own address is outside; the address it holds in our domain is its alias.
    assert summary(answers["carl@acme.com"]) == Answer(
        DirectoryObjectKind.CONTACT, "carl@partner.example", frozenset({"carl@acme.com"})
    )


@pytest.mark.parametrize("address", sorted(ENTRA_DIFFERS))
def test_shared_mailboxes_and_computers_are_never_provisionable(
    directory: Directory, implementation: str, address: str
) -> None:
    expected = ENTRA_DIFFERS[address]["graph" if implementation == "graph" else "other"]
    answer = directory.lookup([address])[address]
    assert summary(answer) == expected
    assert answer is None or not (answer.is_user and answer.enabled)


def test_an_address_two_objects_claim_is_a_non_user_without_primary(directory: Directory) -> None:
    twin = one(directory, "twin@acme.com")
    assert twin.kind is DirectoryObjectKind.OTHER and twin.primary_address is None and not twin.is_user
    assert summary(one(directory, "tom@acme.com")) == Answer(
        DirectoryObjectKind.USER, "tom@acme.com", frozenset({"twin@acme.com"})
    )


def test_a_batch_answers_every_address_once_as_it_would_alone(directory: Directory) -> None:
    unknown = [f"stranger{n}@acme.com" for n in range(40)]
    asked = [*KNOWN, *unknown]  # more than one batch of every adapter (Graph: 10, LDAP: 100 terms)
    answers = directory.lookup(asked)
    assert sorted(answers) == sorted(asked)
    assert all(answers[a] is None for a in unknown)
    for address in [*KNOWN, *unknown[:2]]:
        assert without_dn(answers[address]) == without_dn(directory.lookup([address])[address]), address
    assert directory.lookup([]) == {}


def test_crafted_addresses_match_only_themselves(directory: Directory) -> None:
    crafted = ["*", "*@acme.com", "*)(proxyaddresses=*", "x') or true or ('", "alice@acme.com)(mail=*"]
    assert directory.lookup(crafted) == dict.fromkeys(crafted)


def test_describe_is_one_line_without_a_secret(directory: Directory) -> None:
    text = directory.describe()
    assert text and "\n" not in text
    assert READER_PASSWORD not in text and GRAPH_SECRET not in text


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_a_directory_that_cannot_be_read_raises_retriable_error(servers: Servers, name: str) -> None:
    """Never an empty answer: candidates are deferred, not taken for leavers or strangers."""
    directory = servers.build_unreachable(name)
    try:
        with pytest.raises(RetriableError):
            directory.lookup(["alice@acme.com"])
    finally:
        servers.close(directory)
