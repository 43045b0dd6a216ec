"""assess/resolve: every reason a candidate is or is not created."""

from __future__ import annotations

from datetime import timedelta

from connector.domain.decisions import Method, Outcome, Reason
from connector.domain.directory import DirectoryEntry, DirectoryObjectKind
from connector.domain.evidence import AddressEvidence, Delivery
from connector.policy.addresses import AddressMap, DomainRule
from connector.policy.decide import assess, resolve
from connector.policy.known import KnownAddresses
from tests.conftest import utc

NOW = utc("2026-11-27T00:00:00")
T0 = utc("2026-11-10T00:00:00")
ACME = DomainRule("acme.com", "Acme", Method.SMARTCREATE, strip_subdomains=True)
GLOBEX = DomainRule("globex.com", "Globex", Method.AUTOCREATE)
OFF = DomainRule("initech.com", "Initech", Method.OFF)
ADDRESS_MAP = AddressMap({"acme.com": ACME, "globex.com": GLOBEX, "initech.com": OFF}, {"acme.net": "acme.com"})


def qualified(address: str) -> AddressEvidence:
    run = tuple(Delivery(f"m{i}", T0 + timedelta(days=i)) for i in range(3))
    return AddressEvidence(address=address, recent=run, qualified_at=run[-1].at, qualifying=run)


def accepted(address: str) -> AddressEvidence:
    return AddressEvidence(address=address, accepted_at=T0, accepted_reply="250 2.1.5 Ok")


def user(primary: str, *aliases: str, enabled: bool = True) -> DirectoryEntry:
    return DirectoryEntry(
        DirectoryObjectKind.USER, f"uid={primary},dc=x", primary, aliases, "Person", enabled, external_id="id-1"
    )


def test_unmanaged_and_off_domains_are_skipped() -> None:
    known = KnownAddresses()
    assert assess("a@partner.test", None, qualified("a@partner.test"), known, NOW).reason is Reason.DOMAIN_NOT_MANAGED  # type: ignore[union-attr]
    decision = assess("ivan@initech.com", OFF, qualified("ivan@initech.com"), known, NOW)
    assert decision is not None and decision.reason is Reason.METHOD_OFF


def test_known_users_and_aliases_are_not_created_again() -> None:
    known = KnownAddresses()
    known.add_user("bob@acme.com", ["robert@acme.com"])
    assert assess("bob@acme.com", ACME, qualified("bob@acme.com"), known, NOW).reason is Reason.ALREADY_KNOWN  # type: ignore[union-attr]
    decision = assess("robert@acme.com", ACME, qualified("robert@acme.com"), known, NOW)
    assert decision is not None and decision.reason is Reason.ALIAS_OF and decision.user_address == "bob@acme.com"


def test_smartcreate_waits_below_threshold() -> None:
    evidence = AddressEvidence(
        address="carol@acme.com", recent=(Delivery("m1", T0), Delivery("m2", T0 + timedelta(days=2)))
    )
    decision = assess("carol@acme.com", ACME, evidence, KnownAddresses(), NOW)
    assert decision is not None
    assert (decision.outcome, decision.reason) == (Outcome.WAIT, Reason.BELOW_THRESHOLD)
    assert decision.detail.startswith("2 of 3 valid messages within 14 days")


def test_smartcreate_qualification_in_the_future_is_not_used() -> None:
    evidence = qualified("alice@acme.com")
    assert assess("alice@acme.com", ACME, evidence, KnownAddresses(), NOW) is None
    before = evidence.qualified_at - timedelta(seconds=1)  # type: ignore[operator]
    decision = assess("alice@acme.com", ACME, evidence, KnownAddresses(), before)
    assert decision is not None and decision.reason is Reason.BELOW_THRESHOLD


def test_smartcreate_rcpt_rejection_is_reported_as_such() -> None:
    evidence = AddressEvidence(
        address="x@acme.com",
        rejected_at=T0,
        rejected_reply="550 5.1.1 unknown",
        invalidated_at=T0,
        invalidated_reply="550",
    )
    decision = assess("x@acme.com", ACME, evidence, KnownAddresses(), NOW)
    assert decision is not None and decision.reason is Reason.REJECTED_BY_SERVER


def test_autocreate_needs_a_2xx_to_rcpt() -> None:
    known = KnownAddresses()
    assert assess("gina@globex.com", GLOBEX, accepted("gina@globex.com"), known, NOW) is None
    nothing = assess("new@globex.com", GLOBEX, AddressEvidence(address="new@globex.com"), known, NOW)
    assert nothing is not None and (nothing.outcome, nothing.reason) == (Outcome.WAIT, Reason.NO_SMTP_ACCEPT)
    refused = AddressEvidence(
        address="x@globex.com",
        rejected_at=T0,
        rejected_reply="550 5.1.1 unknown",
        invalidated_at=T0,
        invalidated_reply="550",
    )
    decision = assess("x@globex.com", GLOBEX, refused, known, NOW)
    assert decision is not None and decision.reason is Reason.REJECTED_BY_SERVER
    assert "550 5.1.1 unknown" in decision.detail


def test_directory_answers_decide_qualified_candidates() -> None:
    known = KnownAddresses()
    evidence = qualified("x@acme.com")
    assert resolve("x@acme.com", ACME, evidence, None, known, ADDRESS_MAP).reason is Reason.NOT_IN_DIRECTORY
    group = DirectoryEntry(DirectoryObjectKind.GROUP, "cn=sales", "x@acme.com")
    decision = resolve("x@acme.com", ACME, evidence, group, known, ADDRESS_MAP)
    assert decision.reason is Reason.NOT_A_USER and "group" in decision.detail
    disabled = resolve("x@acme.com", ACME, evidence, user("x@acme.com", enabled=False), known, ADDRESS_MAP)
    assert disabled.reason is Reason.DISABLED_IN_DIRECTORY


def test_alias_creates_the_primary_user_once_with_the_alias_attached() -> None:
    known = KnownAddresses()
    entry = user("bob@acme.com", "robert@acme.com", "bob@acme.net")
    decision = resolve("robert@acme.com", ACME, qualified("robert@acme.com"), entry, known, ADDRESS_MAP)
    assert decision.outcome is Outcome.CREATE_USER
    assert decision.user_address == "bob@acme.com"
    # bob@acme.net is covered by the domain alias: it is bob@acme.com, not an extra alias.
    assert decision.aliases == ("robert@acme.com",)
    assert decision.org == "Acme" and decision.external_id == "id-1"
    assert [m["message_id"] for m in decision.evidence["messages"]] == ["m0", "m1", "m2"]


def test_alias_of_an_existing_user_is_added_as_alias() -> None:
    known = KnownAddresses()
    known.add_user("bob@acme.com")
    entry = user("bob@acme.com", "robert@acme.com")
    decision = resolve("robert@acme.com", ACME, qualified("robert@acme.com"), entry, known, ADDRESS_MAP)
    assert (decision.outcome, decision.user_address) == (Outcome.ADD_ALIAS, "bob@acme.com")


def test_user_lands_in_the_org_of_its_primary_domain() -> None:
    entry = user("gina@globex.com", "gina@acme.com")
    decision = resolve("gina@acme.com", ACME, qualified("gina@acme.com"), entry, KnownAddresses(), ADDRESS_MAP)
    assert decision.user_address == "gina@globex.com" and decision.org == "Globex"


def test_autocreate_evidence_is_the_smtp_reply() -> None:
    decision = resolve(
        "gina@globex.com", GLOBEX, accepted("gina@globex.com"), user("gina@globex.com"), KnownAddresses(), ADDRESS_MAP
    )
    assert decision.outcome is Outcome.CREATE_USER
    assert decision.evidence["smtp_reply"] == "250 2.1.5 Ok"


def test_primary_in_an_off_or_unmanaged_domain_is_not_created() -> None:
    off = resolve(
        "x@acme.com", ACME, qualified("x@acme.com"), user("x@initech.com", "x@acme.com"), KnownAddresses(), ADDRESS_MAP
    )
    assert off.reason is Reason.METHOD_OFF and "x@initech.com" in off.detail
    outside = user("x@partner.test", "x@acme.com")
    unmanaged = resolve("x@acme.com", ACME, qualified("x@acme.com"), outside, KnownAddresses(), ADDRESS_MAP)
    assert unmanaged.reason is Reason.DOMAIN_NOT_MANAGED and "x@partner.test" in unmanaged.detail
