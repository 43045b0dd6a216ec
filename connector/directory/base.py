"""The ``Directory`` protocol every directory adapter implements."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from connector.domain.directory import DirectoryAnswer


class Directory(Protocol):
    """Looks up many addresses at once.

    ``lookup`` returns one answer per requested (already normalised) address:
    the ``DirectoryEntry`` that owns it as primary address or alias, or
    ``None`` when no object has it. It raises ``RetriableError`` when the
    directory cannot be reached, so callers defer instead of guessing.
    """

    def lookup(self, addresses: Sequence[str]) -> Mapping[str, DirectoryAnswer]: ...

    def describe(self) -> str:
        """A one-line description for reports (never contains a secret)."""
        ...
