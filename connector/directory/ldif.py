"""A directory read from an LDIF export (RFC 2849 content records).

For sites that cannot give the connector LDAP access: a cron job exports the
directory to a file (``ldapsearch -LLL``, ``ldifde``) and the connector reads it.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from connector.directory.mapping import (
    AttributeMapping,
    addresses_of,
    entry_from_attributes,
)
from connector.directory.presets import PresetCheck, PresetDetection, detect_from_entries, mapping_for, preset_name
from connector.domain.directory import (
    DirectoryAnswer,
    DirectoryEntry,
    DirectoryObjectKind,
)
from connector.errors import ConnectorError, FatalError, RetriableError

# RFC 2849 / RFC 4512: a descriptor (letter, then letters, digits, hyphens) or a numeric OID.
_ATTRIBUTE_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)*")
# Lines that only make sense in change records.
_CHANGE_RECORD_ATTRIBUTES = frozenset({"changetype", "control"})
# ``ldapsearch -L`` ends its output with a pseudo-record carrying the search result.
_LDAPSEARCH_TRAILER = frozenset({"search", "result"})


class LdifError(ValueError):
    """The LDIF text is malformed or uses a feature we do not accept."""

    def __init__(self, line_no: int, message: str) -> None:
        self.line_no = line_no
        self.message = message
        super().__init__(f"line {line_no}: {message}")


def parse_ldif(text: str) -> Iterator[tuple[str, dict[str, list[str]]]]:
    """Yield ``(dn, attributes)`` for each content record of ``text``.

    Attribute options (``cn;lang-en``) are dropped so values merge under the base
    name; names differing only by case merge under the first spelling seen.
    Change records and ``:<`` URL values raise ``LdifError``: an export that
    contains them is not a directory snapshot, and we never fetch URLs.
    """
    record: list[tuple[int, str]] = []
    first = True
    for line_no, line in _logical_lines(text):
        if first and line:
            first = False
            if _split_name(line_no, line)[0].lower() == "version":
                _check_version(line_no, line)
                continue
        if line:
            record.append((line_no, line))
        elif record:
            parsed = _parse_record(record)
            record = []
            if parsed is not None:
                yield parsed
    if record:
        parsed = _parse_record(record)
        if parsed is not None:
            yield parsed


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Unfold continuation lines and drop comments; ``""`` marks a record separator.

    Each logical line comes with the number of its first physical line.
    """
    current: list[str] | None = None
    current_no = 0
    in_comment = False
    # Not ``splitlines()``: it would also split values on form feeds and U+2028.
    for line_no, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r")
        if line.startswith(" "):
            if in_comment:
                continue  # a folded comment stays a comment
            if current is None:
                raise LdifError(line_no, "continuation line with no line to continue")
            current.append(line[1:])
            continue
        if current is not None:
            yield current_no, "".join(current)
            current = None
        in_comment = line.startswith("#")
        if not line:
            yield line_no, ""
        elif not in_comment:
            current, current_no = [line], line_no
    if current is not None:
        yield current_no, "".join(current)


def _split_name(line_no: int, line: str) -> tuple[str, str]:
    """``(base attribute name, text after the first colon)`` of one logical line."""
    description, sep, rest = line.partition(":")
    if not sep:
        raise LdifError(line_no, "expected 'attribute: value' (no colon)")
    name = description.partition(";")[0]
    if not _ATTRIBUTE_TYPE.fullmatch(name):
        raise LdifError(line_no, f"invalid attribute name {description!r}")
    return name, rest


def _value(line_no: int, rest: str, *, binary_ok: bool) -> str:
    """Decode the part after ``name:``; ``rest`` starts after the first colon."""
    if rest.startswith("<"):
        raise LdifError(line_no, "URL values (':<') are not supported")
    if not rest.startswith(":"):
        return rest.lstrip(" ")
    encoded = rest[1:].strip(" ")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise LdifError(line_no, f"invalid base64 value: {exc}") from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if binary_ok:
            # Binary attributes (AD objectGUID, objectSid, photos) stay in their
            # base64 form: lossless, printable, and for objectGUID the same text
            # Entra ID shows as the ImmutableId.
            return encoded
        raise LdifError(line_no, "base64 value is not UTF-8 text") from exc


def _check_version(line_no: int, line: str) -> None:
    _, rest = _split_name(line_no, line)
    version = _value(line_no, rest, binary_ok=False).strip()
    if version != "1":
        raise LdifError(line_no, f"unsupported LDIF version {version!r}")


def _parse_record(lines: list[tuple[int, str]]) -> tuple[str, dict[str, list[str]]] | None:
    """One record's ``(dn, attributes)``, or ``None`` for the ldapsearch result trailer."""
    first_no, first_line = lines[0]
    name, rest = _split_name(first_no, first_line)
    if name.lower() != "dn":
        if name.lower() == "search" and all(
            _split_name(no, line)[0].lower() in _LDAPSEARCH_TRAILER for no, line in lines
        ):
            return None
        raise LdifError(first_no, f"record must start with 'dn:', not {name!r}")
    dn = _value(first_no, rest, binary_ok=False)

    attributes: dict[str, list[str]] = {}
    spelling: dict[str, str] = {}  # lower-case name -> first spelling seen
    for line_no, line in lines[1:]:
        name, rest = _split_name(line_no, line)
        key = name.lower()
        if key in _CHANGE_RECORD_ATTRIBUTES:
            raise LdifError(line_no, f"change records are not supported ('{name}:')")
        if key == "dn":
            raise LdifError(line_no, "second 'dn:' line in one record (missing blank line?)")
        value = _value(line_no, rest, binary_ok=True)
        attributes.setdefault(spelling.setdefault(key, name), []).append(value)
    return dn, attributes


def _mapped(records: list[tuple[str, dict[str, list[str]]]], mapping: AttributeMapping) -> Iterator[DirectoryEntry]:
    """Map the records in file order, emptying ``records`` as it goes: a big file is never held twice."""
    records.reverse()
    while records:
        dn, attributes = records.pop()
        yield entry_from_attributes(dn, attributes, mapping)


@dataclass(frozen=True, slots=True)
class FileIdentity:
    """Which file, and which version of it: a new export has a new inode, or a new mtime, ctime or size."""

    device: int
    inode: int
    mtime_ns: int
    ctime_ns: int
    size: int

    @classmethod
    def of(cls, status: os.stat_result) -> FileIdentity:
        return cls(status.st_dev, status.st_ino, status.st_mtime_ns, status.st_ctime_ns, status.st_size)


@dataclass(frozen=True, slots=True)
class _Index:
    """The loaded file: entries in file order, the address -> answer index, what the file looks like,
    and the identity of the file they were read from."""

    entries: tuple[DirectoryEntry, ...]
    by_address: dict[str, DirectoryEntry]
    detection: PresetDetection
    identity: FileIdentity


class LdifDirectory:
    """``Directory`` backed by one LDIF file, parsed at the first use and again only when the file changes.

    The file is read lazily so building the composition root never touches the
    disk. The parsed file is kept with its identity (``FileIdentity``): a check
    costs one ``stat``, and a service's cycles (``connector run``) parse a 42k-entry
    export once, not each cycle, yet see a new export (written in place or renamed
    over the old one) in their next run (``refresh_if_changed``). ``mapping`` None (``schema_preset: auto``)
    reads it with the preset its entries fit.
    """

    def __init__(
        self,
        path: Path,
        mapping: AttributeMapping | None,
        logger: logging.Logger | None = None,
    ) -> None:
        self._path = path
        self._mapping = mapping
        self._log = logger or logging.getLogger(__name__)
        self._index: _Index | None = None
        self._lock = threading.Lock()

    def describe(self) -> str:
        """One line for reports."""
        return f"LDIF file {self._path}"

    def lookup(self, addresses: Sequence[str]) -> Mapping[str, DirectoryAnswer]:
        """Answer each (already normalised) address: its owner, or ``None``."""
        by_address = self._load().by_address
        return {address: by_address.get(address) for address in addresses}

    def count_entries(self) -> int:
        """Number of records in the file (with or without an address)."""
        return len(self._load().entries)

    def iter_entries(self) -> Iterator[DirectoryEntry]:
        """Every entry in file order, for ``directory check``."""
        return iter(self._load().entries)

    def content_version(self) -> str | None:
        """Which export the answers come from (its ``FileIdentity``): reconcile plans every managed user again
        when it changes (jobs/reconcile_marks.py). Reads the file if it was not read yet; None when it cannot
        (the lookups then fail as they always did, and say why)."""
        try:
            identity = self._load().identity
        except ConnectorError:
            return None
        return f"ldif:{identity.device}:{identity.inode}:{identity.mtime_ns}:{identity.ctime_ns}:{identity.size}"

    def preset_check(self) -> PresetCheck | None:
        """The configured schema preset next to the one the file's entries fit; ``None`` before it was read."""
        index = self._index
        return None if index is None else PresetCheck(preset_name(self._mapping), index.detection)

    def refresh_if_changed(self) -> bool:
        """Forget the parsed file if the file is not the one parsed (another identity, or gone); True if so.

        The cycle calls it as it starts (jobs/cycle.py), so each run reads the export as it is then, and
        within a run sees one snapshot even if the export is rewritten meanwhile.
        """
        with self._lock:
            if self._index is None:
                return False
            try:
                current: FileIdentity | None = FileIdentity.of(self._path.stat())
            except OSError:
                current = None  # the next use says why it cannot read the file
            if current == self._index.identity:
                return False
            self._index = None
            return True

    def _load(self) -> _Index:
        with self._lock:
            if self._index is None:
                # A failed load is not cached: the next call tries again.
                self._index = self._read()
            return self._index

    def _read(self) -> _Index:
        try:
            # ``utf-8-sig``: Windows tools often prepend a byte order mark.
            with self._path.open(encoding="utf-8-sig") as handle:
                # The identity of what is read (a rename during the read leaves the old file open here):
                # a file changed meanwhile has another identity by the next use, and is read again then.
                identity = FileIdentity.of(os.fstat(handle.fileno()))
                text = handle.read()
        except OSError as exc:
            raise RetriableError(f"cannot read LDIF file {self._path}: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise FatalError(f"LDIF file {self._path} is not UTF-8 (byte offset {exc.start})") from exc
        try:
            records = list(parse_ldif(text))
        except LdifError as exc:
            raise FatalError(f"LDIF file {self._path}, line {exc.line_no}: {exc.message}") from exc
        detection = detect_from_entries(attributes for _, attributes in records)
        check = PresetCheck(preset_name(self._mapping), detection)
        mapping = self._mapping if self._mapping is not None else mapping_for(detection)
        entries = tuple(_mapped(records, mapping))
        by_address = self._index_addresses(entries)
        self._log.info(
            "loaded %d entries with %d addresses from %s (%s)",
            len(entries),
            len(by_address),
            self._path,
            check.describe(),
        )
        return _Index(entries, by_address, detection, identity)

    def _index_addresses(self, entries: Sequence[DirectoryEntry]) -> dict[str, DirectoryEntry]:
        """Map every primary and alias address to its owner; shared ones become ambiguous."""
        owners: dict[str, list[DirectoryEntry]] = {}
        for entry in entries:
            for address in addresses_of(entry):
                found = owners.setdefault(address, [])
                # The same DN twice (duplicate record) is one owner, not a conflict.
                if all(other.dn.lower() != entry.dn.lower() for other in found):
                    found.append(entry)

        by_address: dict[str, DirectoryEntry] = {}
        for address, found in owners.items():
            if len(found) == 1:
                by_address[address] = found[0]
                continue
            dns = "; ".join(entry.dn for entry in found)
            # An address with two owners must never be provisioned: answer a
            # non-user without a primary address so every policy skips it.
            by_address[address] = DirectoryEntry(
                kind=DirectoryObjectKind.OTHER, dn=f"ambiguous: {dns}", primary_address=None
            )
            self._log.warning(
                "LDIF file %s: an address at %s is owned by %d objects (%s); treated as ambiguous",
                self._path,
                address.rpartition("@")[2],
                len(found),
                dns,
            )
            self._log.debug("ambiguous address %s owned by %s", address, dns)
        return by_address
