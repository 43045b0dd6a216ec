"""Address normalisation and domain -> org mapping.

Canonical form: local part lower-cased (every mail server we target treats it
case-insensitively), domain lower-cased and IDNA-encoded (A-labels, UTS #46), so
``Jöhn@Bücher.Example`` and ``jöhn@xn--bcher-kva.example`` are one address. Then
domain aliases (acme.net -> acme.com) and subdomain stripping
(mail.acme.com -> acme.com) map an address onto the managed domain that owns it.

This is the edge for addresses: whatever is not canonicalised here never reaches
the state database. RFC 5321 limits are checked on the UTF-8 octets of the
canonical form (local part at most 64, whole address at most 254: a 256-octet
path less its angle brackets); control characters (C0, C1, DEL, NUL) and text
that is not valid Unicode (a lone surrogate has no UTF-8 form) are refused. So a
canonical address is at most 254 characters, and one mapped onto a managed
domain at most 64 + 1 + 253: it always fits the 320-character address columns
(``connector/store/models.py: ADDRESS``) on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import idna

from connector.domain.decisions import Method
from connector.domain.safe_text import CONTROL_CHARACTERS

MAX_LOCAL_OCTETS = 64  # RFC 5321 4.5.3.1.1
MAX_ADDRESS_OCTETS = 254  # RFC 5321 4.5.3.1.3: a path of 256 octets, less "<" and ">"
MAX_DOMAIN_OCTETS = 253  # RFC 1035: 255 octets on the wire, less the length bytes
# ``str.isspace``'s characters: a str pattern's ``\s`` is the same Unicode test (sre's category), in C.
WHITESPACE = re.compile(r"\s")
_MAX_INPUT = 1024  # longer text is refused before any work is spent on it


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


def _shown(text: str) -> str:
    """``text`` for an error message: quoted and escaped (``repr``), and short (it may be 1 KiB of an
    attacker's making)."""
    return repr(text) if len(text) <= 100 else f"{text[:100]!r}... ({len(text)} characters)"


def _check_text(text: str, original: str) -> None:
    """Refuse control characters, lone surrogates and absurd lengths (before any other work)."""
    if len(text) > _MAX_INPUT:
        raise InvalidAddress(f"too long ({len(text)} characters): {_shown(original)}")
    if CONTROL_CHARACTERS.search(text):
        raise InvalidAddress(f"control character in {_shown(original)}")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidAddress(f"not valid Unicode (lone surrogate) in {_shown(original)}") from exc


def normalise_domain(domain: str) -> str:
    """Lower-case and IDNA-encode a domain; raise ``InvalidAddress`` if impossible."""
    _check_text(domain.strip(), domain)
    return _canonical_domain(domain)


def _canonical_domain(domain: str) -> str:
    """``normalise_domain`` of text already checked by ``_check_text``."""
    text = domain.strip().rstrip(".")
    if not text:
        raise InvalidAddress("empty domain")
    if text.isascii():
        text = text.lower()
        labels = text.split(".")
        if len(text) <= MAX_DOMAIN_OCTETS and all(label and len(label) <= 63 and " " not in label for label in labels):
            return text
        raise InvalidAddress(f"invalid domain {_shown(domain)}")
    try:
        return idna.encode(text, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise InvalidAddress(f"invalid international domain {_shown(domain)}: {exc}") from exc


def normalise_address(address: str) -> str:
    """Canonical form of one address (without domain mapping); ``InvalidAddress`` when it is
    not an address, is longer than RFC 5321 allows, or carries control characters."""
    text = address.strip()
    _check_text(text, address)
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        raise InvalidAddress(f"not an address: {_shown(address)}")
    if WHITESPACE.search(local):
        raise InvalidAddress(f"whitespace in local part: {_shown(address)}")
    local = local.lower()
    canonical = f"{local}@{_canonical_domain(domain)}"
    local_octets = len(local) if local.isascii() else len(local.encode("utf-8"))
    if local_octets > MAX_LOCAL_OCTETS:
        raise InvalidAddress(f"local part of {local_octets} octets (at most {MAX_LOCAL_OCTETS}): {_shown(address)}")
    octets = len(canonical) if canonical.isascii() else len(canonical.encode("utf-8"))
    if octets > MAX_ADDRESS_OCTETS:
        raise InvalidAddress(f"address of {octets} octets (at most {MAX_ADDRESS_OCTETS}): {_shown(address)}")
    return canonical


def address_spellings(address: str) -> tuple[str, ...]:
    """A normalised address and, when its domain is IDNA-encoded, the Unicode spelling too.

    Directories store what people typed (``juergen@bücher.example``) and compare values as text:
    a search for the normalised form alone would miss it. Undecodable labels keep one spelling.
    """
    local, _, domain = address.rpartition("@")
    if "xn--" not in domain:
        return (address,)
    try:
        unicode_domain = idna.decode(domain)
    except (idna.IDNAError, UnicodeError):
        return (address,)
    if unicode_domain == domain:
        return (address,)
    return (address, f"{local}@{unicode_domain}")


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
        """``map(address).address``, without the explain steps (the cycle canonicalises every known
        address of the target: ``compliance/known.py``)."""
        local, _, domain = normalise_address(address).rpartition("@")
        return f"{local}@{self.map_domain(domain)[0]}"
