from __future__ import annotations

import pytest

from connector.domain.decisions import Method
from connector.policy.addresses import WHITESPACE, AddressMap, DomainRule, InvalidAddress, normalise_address


def make_map() -> AddressMap:
    return AddressMap(
        {
            "acme.com": DomainRule("acme.com", "Acme", Method.SMARTCREATE, strip_subdomains=True),
            "globex.com": DomainRule("globex.com", "Globex", Method.AUTOCREATE),
        },
        {"acme.net": "acme.com"},
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("John.Doe@ACME.com", "john.doe@acme.com"),
        ("<a@b.example>", "a@b.example"),
        ("x@Bücher.Example", "x@xn--bcher-kva.example"),
        ("x@xn--bcher-kva.example", "x@xn--bcher-kva.example"),
        ("x@example.com.", "x@example.com"),
    ],
)
def test_normalise_address(raw: str, expected: str) -> None:
    assert normalise_address(raw) == expected


@pytest.mark.parametrize("raw", ["", "nodomain", "@acme.com", "a b@acme.com", "x@", "x@a..b"])
def test_invalid_addresses_are_refused(raw: str) -> None:
    with pytest.raises(InvalidAddress):
        normalise_address(raw)


def test_domain_alias_maps_onto_managed_domain() -> None:
    mapped = make_map().map("Erin@ACME.NET")
    assert mapped.address == "erin@acme.com"
    assert mapped.rule is not None and mapped.rule.org == "Acme"
    assert any("domain alias acme.net -> acme.com" in step for step in mapped.steps)


def test_subdomain_stripping_only_where_enabled() -> None:
    address_map = make_map()
    assert address_map.map("frank@mail.eu.acme.com").address == "frank@acme.com"
    stripped_alias = address_map.map("frank@mail.acme.net")
    assert stripped_alias.address == "frank@acme.com"
    # globex.com has no subdomain stripping: the subdomain stays unmanaged.
    unmanaged = address_map.map("gina@mail.globex.com")
    assert unmanaged.address == "gina@mail.globex.com" and unmanaged.rule is None


def test_unmanaged_domain_has_no_rule() -> None:
    mapped = make_map().map("someone@partner.test")
    assert mapped.rule is None
    assert mapped.steps[-1] == "domain partner.test is not managed"


def test_lookalike_parent_is_not_stripped() -> None:
    # "notacme.com" ends with "acme.com" as text but is another domain.
    assert make_map().map("x@notacme.com").rule is None


def test_the_nearest_managed_parent_decides() -> None:
    address_map = AddressMap(
        {
            "acme.com": DomainRule("acme.com", "Acme", Method.SMARTCREATE, strip_subdomains=True),
            "legacy.acme.com": DomainRule("legacy.acme.com", "Acme", Method.OFF),
        },
        {},
    )
    # legacy.acme.com is managed (off) and does not strip: its subdomains stay unmanaged.
    assert address_map.map("x@mail.legacy.acme.com").rule is None
    assert address_map.map("x@legacy.acme.com").rule is not None
    assert address_map.map("x@eu.acme.com").address == "x@acme.com"


def test_the_whitespace_pattern_is_str_isspace_for_every_code_point() -> None:
    """``normalise_address`` tests the local part with ``WHITESPACE`` instead of ``str.isspace`` per character."""
    differ = [hex(n) for n in range(0x110000) if bool(WHITESPACE.search(chr(n))) != chr(n).isspace()]
    assert differ == []
    for raw in ("a\u00a0b@acme.com", "a\u2003b@acme.com", "a\u3000b@acme.com", "a\u1680b@acme.com"):
        with pytest.raises(InvalidAddress, match="whitespace"):
            normalise_address(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "Erin@ACME.NET",
        "frank@mail.eu.acme.com",
        "frank@mail.acme.net",
        "gina@mail.globex.com",
        "x@Bücher.Example",
        "<Ann@Acme.Com.>",
        "someone@partner.test",
        "Ünïcödé@acme.com",
    ],
)
def test_canonical_is_the_mapped_address_without_the_steps(raw: str) -> None:
    address_map = make_map()
    assert address_map.canonical(raw) == address_map.map(raw).address


@pytest.mark.parametrize("raw", ["", "nodomain", "a b@acme.com", "x@a..b", "a\x00b@acme.com"])
def test_canonical_refuses_what_map_refuses(raw: str) -> None:
    with pytest.raises(InvalidAddress):
        make_map().canonical(raw)
