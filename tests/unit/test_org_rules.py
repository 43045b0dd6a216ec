"""Org rules: ordered, first match wins, on attributes or the DN; applied by resolve()."""

from __future__ import annotations

from connector.domain.decisions import Outcome
from connector.domain.directory import DirectoryEntry, DirectoryObjectKind
from connector.policy.decide import resolve
from connector.policy.known import KnownAddresses
from connector.policy.org_rules import make_rule, org_for, parse_dn
from tests.unit.test_decide import ACME, ADDRESS_MAP, qualified


def entry(dn: str, primary: str = "ann@acme.com", **attributes: tuple[str, ...]) -> DirectoryEntry:
    return DirectoryEntry(
        DirectoryObjectKind.USER, dn, primary, attributes={k.lower(): v for k, v in attributes.items()}
    )


SALES = make_rule("Acme Sales", attribute="department", equals=["Sales", "Vertrieb"])
EUROPE = make_rule("Acme Europe", attribute="company", matches=r"acme (europe|eu)\b.*")
CONTRACTORS = make_rule("Contractors", dn_within="OU=Contractors, DC=acme,DC=com")
ANN = "cn=Ann,ou=people,dc=acme,dc=com"


def test_no_rule_matches_keeps_the_domain_org() -> None:
    assert org_for(entry(ANN, department=("Engineering",)), "acme.com", "Acme", [SALES, EUROPE]) == ("Acme", None)


def test_equals_is_case_insensitive_on_any_value() -> None:
    matched = entry(ANN, department=("HQ", " VERTRIEB "))
    assert org_for(matched, "acme.com", "Acme", [SALES]) == ("Acme Sales", 0)


def test_first_matching_rule_wins() -> None:
    both = entry(ANN, department=("Sales",), company=("Acme Europe GmbH",))
    assert org_for(both, "acme.com", "Acme", [EUROPE, SALES]) == ("Acme Europe", 0)
    assert org_for(both, "acme.com", "Acme", [SALES, EUROPE]) == ("Acme Sales", 0)


def test_matches_is_a_full_match() -> None:
    assert org_for(entry(ANN, company=("Not Acme Europe",)), "acme.com", "Acme", [EUROPE])[1] is None
    assert org_for(entry(ANN, company=("ACME EU Ltd",)), "acme.com", "Acme", [EUROPE])[1] == 0


def test_dn_within_an_ou_ignores_case_and_spacing_but_not_lookalikes() -> None:
    assert CONTRACTORS.matches(entry("CN=Bo,OU=Contractors,DC=Acme,DC=com"), "acme.com")
    assert CONTRACTORS.matches(entry("cn=Bo,ou=Night,ou=contractors,dc=acme,dc=com"), "acme.com")
    assert not CONTRACTORS.matches(entry("cn=Bo,ou=Former Contractors,dc=acme,dc=com"), "acme.com")
    assert not CONTRACTORS.matches(entry("cn=Contractors\\, Bo,ou=people,dc=acme,dc=com"), "acme.com")
    assert not CONTRACTORS.matches(entry("ou=Contractors,dc=acme,dc=org"), "acme.com")


def test_parse_dn_handles_escapes() -> None:
    assert parse_dn("CN=Doe\\, John,OU=A\\2CB, DC=x") == (("cn", "doe, john"), ("ou", "a,b"), ("dc", "x"))


def test_rule_limited_to_domains() -> None:
    only_globex = make_rule("G", attribute="department", equals=["sales"], domains=["globex.com"])
    assert org_for(entry(ANN, department=("Sales",)), "acme.com", "Acme", [only_globex]) == ("Acme", None)
    assert org_for(entry(ANN, department=("Sales",)), "globex.com", "Globex", [only_globex]) == ("G", 0)


def test_dn_attribute_can_be_matched_too() -> None:
    rule = make_rule("Lab", attribute="dn", matches=r".*,ou=lab,.*")
    assert rule.matches(entry("cn=x,ou=lab,dc=acme,dc=com"), "acme.com")


def test_resolve_applies_the_rules_after_the_domain_mapping() -> None:
    answer = entry(ANN, "ann@acme.com", department=("Sales",))
    decision = resolve("ann@acme.com", ACME, qualified("ann@acme.com"), answer, KnownAddresses(), ADDRESS_MAP, [SALES])
    assert decision.outcome is Outcome.CREATE_USER and decision.org == "Acme Sales"
    assert "org rule 1" in decision.detail
    plain = resolve("ann@acme.com", ACME, qualified("ann@acme.com"), answer, KnownAddresses(), ADDRESS_MAP)
    assert plain.org == "Acme" and "org rule" not in plain.detail
