"""Address normalisation and domain -> org mapping.

Canonical form: local part lower-cased (every mail server we target treats it
case-insensitively), domain lower-cased and IDNA-encoded (A-labels, UTS #46), so
``Jöhn@Bücher.Example`` and ``jöhn@xn--bcher-kva.example`` are one address. Then
domain aliases (acme.net -> acme.com) and subdomain stripping
(mail.acme.com -> acme.com) map an address onto the managed domain that owns it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import idna

from connector.domain.decisions import Method


class InvalidAddress(ValueError):
    """The text is not an address we can canonicalise."""


@dataclass(frozen=True, slots=True)
class DomainRule:
    """How one managed domain's users are created."""

    domain: str
    org: str
    method: Method
    threshold: int = 3
    window: timedelta = timedelta(days=14)
    strip_subdomains: bool = False


def normalise_domain(domain: str) -> str:
    """Lower-case and IDNA-encode a domain; raise ``InvalidAddress`` if impossible."""
    text = domain.strip().rstrip(".")
    if not text:
        raise InvalidAddress("empty domain")
    if text.isascii():
        text = text.lower()
        if all(label and len(label) <= 63 for label in text.split(".")):
            return text
        raise InvalidAddress(f"invalid domain {domain!r}")
    try:
        return idna.encode(text, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise InvalidAddress(f"invalid international domain {domain!r}: {exc}") from exc


def normalise_address(address: str) -> str:
    """Canonical form of one address (without domain mapping)."""
    text = address.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        raise InvalidAddress(f"not an address: {address!r}")
    if any(ch.isspace() for ch in local):
        raise InvalidAddress(f"whitespace in local part: {address!r}")
    return f"{local.lower()}@{normalise_domain(domain)}"


@dataclass(frozen=True, slots=True)
class MappedAddress:
    """An address mapped onto its managed domain, with the steps taken (for ``explain``)."""

    original: str
    address: str
    rule: DomainRule | None
    steps: tuple[str, ...]

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]


class AddressMap:
    """Maps addresses onto managed domains; built once from the config."""

    def __init__(self, rules: dict[str, DomainRule], domain_aliases: dict[str, str]) -> None:
        self._rules = {normalise_domain(d): r for d, r in rules.items()}
        self._aliases = {normalise_domain(a): normalise_domain(t) for a, t in domain_aliases.items()}

    @property
    def rules(self) -> dict[str, DomainRule]:
        return dict(self._rules)

    def rule_for(self, domain: str) -> DomainRule | None:
        return self._rules.get(domain)

    def map_domain(self, domain: str) -> tuple[str, list[str]]:
        """Return the managed domain ``domain`` belongs to (or itself) and the steps taken."""
        steps: list[str] = []
        for _ in range(3):  # alias -> strip -> alias at most; bounded against cycles
            if domain in self._rules:
                return domain, steps
            if domain in self._aliases:
                target = self._aliases[domain]
                steps.append(f"domain alias {domain} -> {target}")
                domain = target
                continue
            parent = self._strippable_parent(domain)
            if parent is None:
                break
            steps.append(f"subdomain stripping {domain} -> {parent}")
            domain = parent
        return domain, steps

    def _strippable_parent(self, domain: str) -> str | None:
        """The nearest managed (or alias) parent, if it strips subdomains.

        The nearest one decides: x@mail.legacy.acme.com belongs to legacy.acme.com
        when that is managed, even if acme.com strips subdomains.
        """
        labels = domain.split(".")
        for i in range(1, len(labels) - 1):
            parent = ".".join(labels[i:])
            rule = self._rules.get(parent) or self._rules.get(self._aliases.get(parent, ""))
            if rule is not None:
                return parent if rule.strip_subdomains else None
        return None

    def map(self, address: str) -> MappedAddress:
        """Canonicalise ``address`` and map it onto its managed domain."""
        normalised = normalise_address(address)
        steps = [] if normalised == address else [f"normalised {address} -> {normalised}"]
        local, _, domain = normalised.rpartition("@")
        mapped_domain, domain_steps = self.map_domain(domain)
        steps.extend(domain_steps)
        rule = self._rules.get(mapped_domain)
        if rule is None:
            steps.append(f"domain {mapped_domain} is not managed")
        else:
            steps.append(f"domain {mapped_domain} -> org {rule.org!r}, method {rule.method.value}")
        return MappedAddress(address, f"{local}@{mapped_domain}", rule, tuple(steps))

    def canonical(self, address: str) -> str:
        """Shortcut for ``map(address).address``."""
        return self.map(address).address
