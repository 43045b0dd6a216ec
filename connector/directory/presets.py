"""Which schema preset fits a directory: Active Directory or OpenLDAP, from what it carries.

Pure code. Read with the wrong preset, an Active Directory export looks like an
OpenLDAP one with fewer addresses: aliases in ``proxyAddresses`` are never read,
disabled accounts look enabled and contacts look like people. So ``auto`` detects
the preset, and a preset chosen by hand that does not fit is a warning.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from connector.directory.mapping import ACTIVE_DIRECTORY, OPENLDAP, PRESETS, AttributeMapping

PresetName = Literal["openldap", "active_directory"]

AD_MARKER_ATTRIBUTES = ("proxyAddresses", "userAccountControl", "sAMAccountName")
"""Attributes only Active Directory objects carry (compared case-insensitively)."""

AD_MARKER_CLASSES = ("user", "contact")
"""Object classes of Active Directory mail recipients (OpenLDAP has neither)."""

ADDRESS_ATTRIBUTES = ("mail", "mailAlternateAddress", "proxyAddresses")
"""An entry with one of these is a mail recipient: only those count as evidence."""

SAMPLE_ATTRIBUTES = ("objectClass", *ADDRESS_ATTRIBUTES, "userAccountControl", "sAMAccountName")
"""What to read of a sample of entries to detect the preset."""

AD_CAPABILITY = "1.2.840.113556.1.4.800"
"""``LDAP_CAP_ACTIVE_DIRECTORY_OID`` in the root DSE's ``supportedCapabilities`` (AD DS, not AD LDS)."""

ROOT_DSE_ATTRIBUTES = ("supportedCapabilities", "forestFunctionality", "isGlobalCatalogReady")
"""Root DSE attributes that only an Active Directory domain controller publishes."""

_EXAMPLES = 3
"""Marker names quoted in a message."""


@dataclass(frozen=True, slots=True)
class PresetDetection:
    """What the directory looks like, and why we think so."""

    preset: PresetName
    evidence: str
    """One phrase for people: ``5 of 6 entries with an address carry proxyAddresses, userAccountControl``."""
    conclusive: bool = True
    """False when there was nothing to go by (no entry with an address): ``preset`` is only the fallback."""


@dataclass(frozen=True, slots=True)
class PresetCheck:
    """The configured preset next to the detected one."""

    configured: str
    """``auto``, ``openldap``, ``active_directory`` or ``custom``."""
    detection: PresetDetection

    @property
    def in_use(self) -> str:
        """The preset the directory is read with."""
        return self.detection.preset if self.configured == "auto" else self.configured

    def describe(self) -> str:
        """``schema: active_directory (detected: ...)``, for ``directory check``."""
        if self.configured == "auto":
            return f"schema preset: {self.in_use} (auto: {self.detection.evidence})"
        return f"schema preset: {self.configured} (configured; {self.detection.evidence})"

    def warning(self) -> str | None:
        """A sentence when a preset chosen by hand does not fit the entries; ``None`` when it does."""
        detected = self.detection
        if self.configured not in PRESETS or not detected.conclusive or detected.preset == self.configured:
            return None
        if detected.preset == "active_directory":
            effect = "aliases in proxyAddresses are never read, and disabled accounts and contacts are taken for users"
        else:
            effect = "aliases in mailAlternateAddress are never read, and locked accounts are taken for enabled"
        return (
            f"directory.schema_preset is {self.configured}, but the directory looks like "
            f"{_TITLES[detected.preset]} ({detected.evidence}): {effect}; "
            f'set schema_preset: {detected.preset} or "auto"'
        )


_TITLES: dict[str, str] = {"openldap": "OpenLDAP", "active_directory": "Active Directory"}


@runtime_checkable
class PresetAware(Protocol):
    """A directory adapter that knows which preset fits it once it has read the directory."""

    def preset_check(self) -> PresetCheck | None:
        """``None`` until the directory was read (never reads it itself)."""
        ...


def preset_check_of(directory: object) -> PresetCheck | None:
    """The adapter's preset check, if it has one and has read the directory (a mirror: its source's)."""
    source = getattr(directory, "source", directory)  # MirrorDirectory reads through its LDAP source
    return source.preset_check() if isinstance(source, PresetAware) else None


def mapping_for(detection: PresetDetection) -> AttributeMapping:
    """The attribute mapping of the detected preset."""
    return ACTIVE_DIRECTORY if detection.preset == "active_directory" else OPENLDAP


def preset_name(mapping: AttributeMapping | None) -> str:
    """The configured preset's name: ``auto`` for none, ``custom`` for a mapping that is no preset."""
    if mapping is None:
        return "auto"
    return next((name for name, preset in PRESETS.items() if preset == mapping), "custom")


def ad_markers(attributes: Mapping[str, Sequence[str]]) -> list[str]:
    """The Active Directory markers one entry carries (attribute names and ``objectClass: x``)."""
    names = {name.lower(): values for name, values in attributes.items() if values}
    found = [name for name in AD_MARKER_ATTRIBUTES if name.lower() in names]
    classes = {str(value).strip().lower() for value in names.get("objectclass", ())}
    found += [f"objectClass: {name}" for name in AD_MARKER_CLASSES if name in classes]
    return found


def detect_from_entries(entries: Iterable[Mapping[str, Sequence[str]]]) -> PresetDetection:
    """Active Directory when most entries with an address carry AD markers, else OpenLDAP.

    A majority, not any: an OpenLDAP directory may carry a ``proxyAddresses`` here
    and there (Exchange migrations, groupware schemas), while in an AD export
    every mail recipient is a ``user``, ``contact`` or ``group`` with ``proxyAddresses``.
    """
    total = ad_like = 0
    seen: dict[str, None] = {}
    address_names = {name.lower() for name in ADDRESS_ATTRIBUTES}
    for attributes in entries:
        if not any(name.lower() in address_names and values for name, values in attributes.items()):
            continue
        total += 1
        markers = ad_markers(attributes)
        if markers:
            ad_like += 1
            seen.update(dict.fromkeys(markers))
    if total == 0:
        return PresetDetection("openldap", "no entry with an address to go by", conclusive=False)
    examples = ", ".join(list(seen)[:_EXAMPLES])
    counted = f"{ad_like} of {total} entries with an address carry"
    if ad_like * 2 > total:
        return PresetDetection("active_directory", f"{counted} {examples}")
    if ad_like:
        return PresetDetection("openldap", f"only {counted} Active Directory attributes ({examples})")
    return PresetDetection("openldap", f"none of {total} entries with an address carries Active Directory attributes")


def detect_from_root_dse(attributes: Mapping[str, Sequence[str]]) -> PresetDetection | None:
    """Active Directory when the server's root DSE says so; ``None`` when it does not (ask the entries)."""
    names = {name.lower(): [str(v).strip() for v in values] for name, values in attributes.items() if values}
    if AD_CAPABILITY in names.get("supportedcapabilities", ()):
        return PresetDetection("active_directory", f"the server's root DSE lists capability {AD_CAPABILITY}")
    for name in ("forestFunctionality", "isGlobalCatalogReady"):
        if name.lower() in names:
            return PresetDetection("active_directory", f"the server's root DSE has {name}")
    return None
