"""The reconcile's speed paths change nothing it decides (issue 13, item 5).

``RememberingAddressMap`` answers exactly as the address map it copies, errors included, and
the pause of full collections always hands the collector's thresholds back.
"""

from __future__ import annotations

import gc
import weakref

import pytest

from connector.domain.decisions import Method
from connector.domain.directory import DirectoryEntry, DirectoryObjectKind
from connector.policy.addresses import AddressMap, DomainRule, InvalidAddress
from connector.policy.reconcile import canonical_or, directory_state
from jobs.reconcile import FULL_COLLECTION_PAUSED, RememberingAddressMap, _full_collections_paused

ACME = DomainRule("acme.com", "Acme", Method.SMARTCREATE, strip_subdomains=True)
GLOBEX = DomainRule("globex.com", "Globex", Method.AUTOCREATE)
ADDRESS_MAP = AddressMap({"acme.com": ACME, "globex.com": GLOBEX}, {"acme.net": "acme.com"})

ADDRESSES = [
    "Alice@ACME.com",
    "alice@acme.com",
    "<Bob@Mail.Acme.com>",
    "carol@acme.net",
    "dave@bücher.example",
    "erin@globex.com.",
    "frank@other.example",
]
INVALID = ["not an address", "x@", "a b@acme.com", "a\x00@acme.com", "@acme.com"]


def test_remembered_answers_are_the_address_maps_answers() -> None:
    remembering = RememberingAddressMap.of(ADDRESS_MAP)
    assert isinstance(remembering, RememberingAddressMap)
    for _ in range(2):  # the second round comes from memory
        for address in ADDRESSES:
            assert remembering.canonical(address) == ADDRESS_MAP.canonical(address)
            assert canonical_or(remembering, address, "fallback") == canonical_or(ADDRESS_MAP, address, "fallback")
    assert remembering.rule_for("acme.com") is ACME
    assert remembering.rules == ADDRESS_MAP.rules


@pytest.mark.parametrize("address", INVALID)
def test_an_invalid_address_is_refused_every_time(address: str) -> None:
    remembering = RememberingAddressMap.of(ADDRESS_MAP)
    with pytest.raises(InvalidAddress) as first:
        ADDRESS_MAP.canonical(address)
    for _ in range(2):
        with pytest.raises(InvalidAddress) as again:
            remembering.canonical(address)
        assert str(again.value) == str(first.value)
        assert canonical_or(remembering, address, "fallback") == "fallback"


def test_directory_verdicts_are_the_same_through_the_remembering_map() -> None:
    entry = DirectoryEntry(
        kind=DirectoryObjectKind.USER,
        dn="CN=Alice,OU=People,DC=acme,DC=com",
        primary_address="Alice@Mail.ACME.com",
        aliases=("alice@acme.net", "ALICE@acme.com", "not an address"),
        display_name="Alice",
    )
    remembering = RememberingAddressMap.of(ADDRESS_MAP)
    assert directory_state(entry, remembering, ()) == directory_state(entry, ADDRESS_MAP, ())
    assert directory_state(entry, remembering, ()) == directory_state(entry, ADDRESS_MAP, ())


def test_a_subclass_or_an_already_remembering_map_is_left_as_it_is() -> None:
    class Special(AddressMap):
        def canonical(self, address: str) -> str:
            return "special@acme.com"

    special = Special({"acme.com": ACME}, {})
    assert RememberingAddressMap.of(special) is special
    remembering = RememberingAddressMap.of(ADDRESS_MAP)
    assert RememberingAddressMap.of(remembering) is remembering


def test_each_reconcile_remembers_afresh() -> None:
    """A map is remembered for one reconcile only: the next one starts from the config's map."""
    first, second = RememberingAddressMap.of(ADDRESS_MAP), RememberingAddressMap.of(ADDRESS_MAP)
    first.canonical("alice@acme.com")
    assert first is not second
    assert "alice@acme.com" not in vars(second)["_remembered"]


def test_full_collections_are_paused_and_the_thresholds_given_back() -> None:
    before = gc.get_threshold()
    with _full_collections_paused():
        young, middle, old = gc.get_threshold()
        assert (young, middle) == before[:2]  # young collections go on
        assert old == FULL_COLLECTION_PAUSED > before[2]
        assert gc.isenabled()
    assert gc.get_threshold() == before
    with pytest.raises(RuntimeError), _full_collections_paused():
        raise RuntimeError("gather failed")
    assert gc.get_threshold() == before


def test_a_young_cycle_is_still_collected_while_full_collections_wait() -> None:
    class Node:
        partner: object

    with _full_collections_paused():
        a, b = Node(), Node()
        a.partner, b.partner = b, a
        probe = weakref.ref(a)
        del a, b
        young = gc.get_threshold()[0]
        kept = [[] for _ in range(young * 3)]  # enough allocations for the interpreter to collect by itself
        assert probe() is None  # gc.disable() would have kept it
        del kept
