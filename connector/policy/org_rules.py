"""Org rules: directory attributes can move a user out of its domain's org. Pure code.

The domain mapping gives every user a default org; the ordered rules are then
tried on the user's directory entry and the first one that matches wins.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from connector.domain.directory import DirectoryEntry


@dataclass(frozen=True, slots=True)
class OrgRule:
    """One rule: a condition on the directory entry and the org it leads to.

    Exactly one of ``equals``, ``pattern`` and ``dn_within`` is set.
    """

    org: str
    attribute: str | None = None
    equals: frozenset[str] = frozenset()
    """Lower-case values; any value of ``attribute`` equal to one (case-insensitive) matches."""
    pattern: re.Pattern[str] | None = None
    """Full match on any value of ``attribute``."""
    dn_within: tuple[tuple[str, str], ...] | None = None
    """Normalised RDNs of a base DN; the entry must be at or below it."""
    domains: frozenset[str] = frozenset()
    """Managed domains the rule applies to (empty: every domain)."""

    def matches(self, entry: DirectoryEntry, domain: str) -> bool:
        """Whether this rule applies to ``entry``, a user of managed domain ``domain``."""
        if self.domains and domain not in self.domains:
            return False
        if self.dn_within is not None:
            rdns = parse_dn(entry.dn)
            return len(rdns) >= len(self.dn_within) and rdns[len(rdns) - len(self.dn_within) :] == self.dn_within
        values = _values(entry, self.attribute or "")
        if self.pattern is not None:
            return any(self.pattern.fullmatch(v) for v in values)
        return any(v.strip().lower() in self.equals for v in values)


def make_rule(
    org: str,
    *,
    attribute: str | None = None,
    equals: Sequence[str] = (),
    matches: str | None = None,
    dn_within: str | None = None,
    domains: Sequence[str] = (),
) -> OrgRule:
    """An ``OrgRule`` from settings-like values (validated by the config already)."""
    return OrgRule(
        org=org,
        attribute=attribute.lower() if attribute else None,
        equals=frozenset(v.strip().lower() for v in equals),
        pattern=re.compile(matches, re.IGNORECASE) if matches is not None else None,
        dn_within=parse_dn(dn_within) if dn_within is not None else None,
        domains=frozenset(d.lower() for d in domains),
    )


def org_for(entry: DirectoryEntry, domain: str, default_org: str, rules: Sequence[OrgRule]) -> tuple[str, int | None]:
    """The org for a user and the index of the rule that chose it (``None``: the domain's org)."""
    for index, rule in enumerate(rules):
        if rule.matches(entry, domain):
            return rule.org, index
    return default_org, None


def _values(entry: DirectoryEntry, attribute: str) -> tuple[str, ...]:
    if attribute == "dn":
        return (entry.dn,)
    return entry.attributes.get(attribute, ())


def parse_dn(dn: str) -> tuple[tuple[str, str], ...]:
    """RDNs of ``dn`` as ``(type, value)``, lower-cased and stripped, for comparisons.

    Handles backslash escapes (``\\,``, ``\\2C``) so an escaped comma never splits.
    Multi-valued RDNs (``+``) are kept whole as one value.
    """
    rdns: list[tuple[str, str]] = []
    current: list[str] = []
    i = 0
    text = dn.strip()
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            hex_pair = text[i + 1 : i + 3]
            if re.fullmatch(r"[0-9A-Fa-f]{2}", hex_pair):
                current.append(chr(int(hex_pair, 16)))
                i += 3
                continue
            current.append(text[i + 1])
            i += 2
            continue
        if char in ",;":
            rdns.append(_rdn("".join(current)))
            current = []
        else:
            current.append(char)
        i += 1
    if current or rdns:
        rdns.append(_rdn("".join(current)))
    return tuple(rdns)


def _rdn(text: str) -> tuple[str, str]:
    name, _, value = text.partition("=")
    return name.strip().lower(), " ".join(value.split()).lower()
