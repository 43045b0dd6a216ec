"""Addresses that never become users, whatever the evidence (pure)."""

from __future__ import annotations

import re
from collections.abc import Iterable


class Exclusions:
    """Local-part patterns (postmaster, noreply, bounce, VERP ...) and blocked addresses."""

    def __init__(self, local_parts: Iterable[str], blocked: Iterable[str] = ()) -> None:
        self._patterns = [(p, re.compile(p, re.IGNORECASE)) for p in local_parts]
        self._blocked = set(blocked)

    def blocked(self, address: str) -> bool:
        return address in self._blocked

    def matching_pattern(self, address: str) -> str | None:
        """The first pattern matching the whole local part, if any."""
        local = address.rpartition("@")[0]
        for text, pattern in self._patterns:
            if pattern.fullmatch(local):
                return text
        return None
