"""The ``Directory`` protocol every directory adapter implements, and the batching they share."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from connector.domain.directory import DirectoryAnswer

if TYPE_CHECKING:
    from connector.directory.mirror import MirrorRefresh


class Directory(Protocol):
    """Looks up many addresses at once.

    ``lookup`` returns one answer per requested (already normalised) address:
    the ``DirectoryEntry`` that owns it as primary address or alias, or
    ``None`` when no object has it. It raises ``RetriableError`` when the
    directory cannot be reached, so callers defer instead of guessing, and
    ``CredentialsRefused`` when it refuses our credentials (the run stops).
    """

    def lookup(self, addresses: Sequence[str]) -> Mapping[str, DirectoryAnswer]: ...

    def describe(self) -> str:
        """A one-line description for reports (never contains a secret)."""
        ...


def lookup_in_batches(
    addresses: Sequence[str],
    batch_size: int,
    lookup_batch: Callable[[list[str]], Mapping[str, DirectoryAnswer]],
    *,
    terms: Callable[[str], int] | None = None,
) -> dict[str, DirectoryAnswer]:
    """One answer per address, asking ``lookup_batch`` at most ``batch_size`` addresses at a time.

    A server takes only so many terms per query (an LDAP filter, a Graph ``$filter`` of at most 15
    clauses); each batch is sent without repeats, in the order given. ``terms`` counts the terms one
    address costs (an internationalised domain is asked in two spellings): a batch then holds at most
    ``batch_size`` terms, and an address alone is still asked. A failing batch raises: a lookup is
    never answered in part.
    """
    answers: dict[str, DirectoryAnswer] = {}
    size = max(1, batch_size)
    if terms is None:
        for start in range(0, len(addresses), size):
            answers.update(lookup_batch(list(dict.fromkeys(addresses[start : start + size]))))
        return answers
    batch: list[str] = []
    used = 0
    for address in dict.fromkeys(addresses):
        cost = max(1, terms(address))
        if batch and used + cost > size:
            answers.update(lookup_batch(batch))
            batch, used = [], 0
        batch.append(address)
        used += cost
    if batch:
        answers.update(lookup_batch(batch))
    return answers


@runtime_checkable
class RefreshableMirror(Protocol):
    """Optional: a directory answered from a copy in the state database, read again from the live
    directory when due (``MirrorDirectory``): the cycle refreshes it first, the ``directory_mirror``
    job and ``connector directory refresh`` on their own."""

    def refresh_if_due(self) -> object:
        """Refresh when due; ``RetriableError`` when it is due, cannot be read and the copy is unusable."""
        ...

    def refresh(self, now: datetime, *, full: bool | None = None) -> MirrorRefresh:
        """Read the directory into the copy now: full when due or asked (``full``), else only changes."""
        ...


@runtime_checkable
class ReloadableDirectory(Protocol):
    """Optional: a directory read from a file and kept parsed (``LdifDirectory``): each cycle starts
    by forgetting a parse of a file that has changed since."""

    def refresh_if_changed(self) -> bool:
        """Forget the parsed file if it is not the one parsed; True if so."""
        ...


@runtime_checkable
class CountableDirectory(Protocol):
    """Optional: a directory that can count the entries it would search (``directory check``, ``config check``)."""

    def count_entries(self) -> int: ...


@runtime_checkable
class CountableUsers(Protocol):
    """Optional: a directory that can count its users (Microsoft Graph's tenant), for ``directory check``."""

    def count_users(self) -> int: ...
