"""Addresses are validated once, at the edge: RFC 5321 lengths on UTF-8 octets, no control
characters, valid Unicode. Exact boundaries: 64 / 65 octets of local part, 254 / 255 of address."""

from __future__ import annotations

import pytest

from connector.domain.decisions import Method
from connector.policy.addresses import (
    MAX_ADDRESS_OCTETS,
    MAX_LOCAL_OCTETS,
    AddressMap,
    DomainRule,
    InvalidAddress,
    normalise_address,
    normalise_domain,
)
from connector.store.models import ADDRESS

# A 250-character ASCII domain of valid labels (4 labels of 61 characters and ".com").
LONG_DOMAIN = ".".join(["d" * 61] * 4) + ".com"


def test_the_local_part_may_have_64_octets_not_65() -> None:
    assert normalise_address("a" * 64 + "@acme.com") == "a" * 64 + "@acme.com"
    with pytest.raises(InvalidAddress, match="local part of 65 octets"):
        normalise_address("a" * 65 + "@acme.com")


def test_octets_are_counted_in_utf8_not_characters() -> None:
    assert normalise_address("é" * 32 + "@acme.com") == "é" * 32 + "@acme.com"  # 64 octets
    with pytest.raises(InvalidAddress, match="local part of 66 octets"):
        normalise_address("é" * 33 + "@acme.com")  # 33 characters, 66 octets


def test_the_local_part_is_measured_in_its_canonical_form() -> None:
    # "İ" (2 octets) lower-cases to "i̇" (3 octets): 21 of them are 42 octets as logged, 63 canonical.
    assert len(normalise_address("İ" * 21 + "@acme.com").partition("@")[0].encode()) == 63
    with pytest.raises(InvalidAddress, match="local part of 66 octets"):
        normalise_address("İ" * 22 + "@acme.com")


def test_the_address_may_have_254_octets_not_255() -> None:
    at_limit = "a" * (MAX_ADDRESS_OCTETS - 1 - len(LONG_DOMAIN)) + "@" + LONG_DOMAIN
    assert len(at_limit) == 254 and normalise_address(at_limit.upper()) == at_limit
    with pytest.raises(InvalidAddress, match="address of 255 octets"):
        normalise_address("a" + at_limit)


def test_a_330_character_local_part_is_refused() -> None:
    """Postfix accepts and logs it; PostgreSQL's 320-character column would refuse it."""
    with pytest.raises(InvalidAddress, match="local part of 330 octets"):
        normalise_address("x" * 330 + "@acme.com")


def test_an_international_domain_counts_in_its_ascii_form() -> None:
    canonical = normalise_address("a@" + "ü" * 50 + ".example")
    assert canonical.startswith("a@xn--") and canonical.isascii()
    with pytest.raises(InvalidAddress):
        normalise_address("a" * 60 + "@" + ".".join(["ü" * 30] * 6) + ".example")


@pytest.mark.parametrize(
    "raw",
    [
        "a\x00b@acme.com",  # NUL
        "alice@acme.com\x00",
        "evil\x1b]0;pwned\x07@acme.com",  # ESC ] 0 ; ... BEL
        "a\rb@acme.com",
        "a\x7fb@acme.com",  # DEL
        "a\x85b@acme.com",  # C1 NEL
        "a\x9bb@acme.com",  # C1 CSI
        "alice@ac\x00me.com",
        "alice@acme\x1b.com",
        "alice@a\tb.com",
        "alice@acme com",  # a space in an ASCII domain
        "a\ud800b@acme.com",  # a lone surrogate (a JSON "\ud800"): no UTF-8 form
        "alice@acme.com\udc80",
        "x" * 2000 + "@acme.com",
    ],
)
def test_control_characters_and_invalid_unicode_are_refused(raw: str) -> None:
    with pytest.raises(InvalidAddress) as caught:
        normalise_address(raw)
    message = str(caught.value)
    assert message.isprintable() and len(message) < 260  # says what it saw, escaped and short


@pytest.mark.parametrize("domain", ["ac\x00me.com", "acme\x9b.com", "a" * 250 + ".com", "x\ud800.com"])
def test_domains_are_checked_too(domain: str) -> None:
    with pytest.raises(InvalidAddress):
        normalise_domain(domain)


def test_any_address_mapped_onto_a_managed_domain_fits_the_address_columns() -> None:
    """64 octets of local part and a 253-character managed domain: 318 characters <= the column's 320."""
    managed = ".".join(["m" * 63] * 3) + "." + "m" * 61
    assert len(managed) == 253
    address_map = AddressMap({managed: DomainRule(managed, "Org", Method.SMARTCREATE)}, {"a.test": managed})
    mapped = address_map.map("l" * MAX_LOCAL_OCTETS + "@a.test")
    assert mapped.rule is not None and len(mapped.address) == 318 <= ADDRESS.length  # type: ignore[operator]


def test_address_map_refuses_what_normalisation_refuses() -> None:
    address_map = AddressMap({"acme.com": DomainRule("acme.com", "Acme", Method.SMARTCREATE)}, {})
    with pytest.raises(InvalidAddress):
        address_map.map("x" * 330 + "@acme.com")
    with pytest.raises(InvalidAddress):
        address_map.map("a\x00@acme.com")
