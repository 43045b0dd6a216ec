"""``lookup_in_batches``: the one batching loop the LDAP and Graph adapters share (directory/base.py)."""

from __future__ import annotations

import pytest

from connector.directory.base import lookup_in_batches
from connector.domain.directory import DirectoryAnswer
from connector.errors import RetriableError


class Recorder:
    """A batch lookup that answers None for every address and remembers each batch it was asked."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.batches: list[list[str]] = []
        self.fail_on = fail_on

    def __call__(self, batch: list[str]) -> dict[str, DirectoryAnswer]:
        self.batches.append(batch)
        if self.fail_on is not None and len(self.batches) == self.fail_on:
            raise RetriableError("directory down")
        return dict.fromkeys(batch)


def test_addresses_are_asked_in_batches_in_order() -> None:
    lookup = Recorder()
    addresses = [f"u{n}@acme.com" for n in range(7)]
    answers = lookup_in_batches(addresses, 3, lookup)
    assert lookup.batches == [addresses[0:3], addresses[3:6], addresses[6:7]]
    assert list(answers) == addresses


def test_a_batch_is_sent_without_repeats() -> None:
    lookup = Recorder()
    answers = lookup_in_batches(["a@x.com", "a@x.com", "b@x.com", "b@x.com"], 3, lookup)
    assert lookup.batches == [["a@x.com", "b@x.com"], ["b@x.com"]]
    assert set(answers) == {"a@x.com", "b@x.com"}


def test_nothing_to_ask_asks_nothing_and_a_size_below_one_is_one() -> None:
    lookup = Recorder()
    assert lookup_in_batches([], 10, lookup) == {} and lookup.batches == []
    lookup_in_batches(["a@x.com", "b@x.com"], 0, lookup)
    assert lookup.batches == [["a@x.com"], ["b@x.com"]]


def test_a_failing_batch_fails_the_lookup_never_a_partial_answer() -> None:
    lookup = Recorder(fail_on=2)
    with pytest.raises(RetriableError):
        lookup_in_batches(["a@x.com", "b@x.com", "c@x.com"], 1, lookup)
    assert len(lookup.batches) == 2


def test_batches_count_the_terms_each_address_costs() -> None:
    """An address asked in two spellings costs two terms; one too costly alone is still asked."""
    lookup = Recorder()
    cost = {"a@x.com": 1, "b@xn--x.com": 2, "c@x.com": 1, "d@xn--y.com": 2, "e@xn--z.com": 5}
    answers = lookup_in_batches([*cost, "a@x.com"], 3, lookup, terms=cost.__getitem__)
    assert lookup.batches == [["a@x.com", "b@xn--x.com"], ["c@x.com", "d@xn--y.com"], ["e@xn--z.com"]]
    assert set(answers) == set(cost)
