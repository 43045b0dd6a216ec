"""A directory read over LDAP with ldap3: OpenLDAP, 389-DS, Active Directory.

Lookups are batched: one search per ``batch_size`` addresses with an OR filter
over every address attribute, every value escaped. A refused bind
(``invalidCredentials``, ``inappropriateAuthentication``) raises ``CredentialsRefused``
at once, without trying the other servers (docs/reliability.md#authentication-failures);
any other failure (no server reachable, TLS, timeout, size limit) raises
``RetriableError``: the cycle defers the candidates instead of guessing.

The first connection also tells which schema preset fits the server (its root
DSE, else a sample of entries): ``auto`` reads with that preset, a preset
chosen by hand that does not fit is a warning.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ldap3 import ANONYMOUS, BASE, NONE, SIMPLE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import (
    LDAPException,
    LDAPInappropriateAuthenticationResult,
    LDAPInvalidCredentialsResult,
    LDAPOperationResult,
    LDAPSizeLimitExceededResult,
    LDAPTimeLimitExceededResult,
)
from ldap3.utils.conv import escape_filter_chars
from pydantic import SecretStr

from connector.directory.answers import answers_for, text_of
from connector.directory.base import lookup_in_batches
from connector.directory.mapping import (
    AttributeMapping,
    address_attributes,
    entry_from_attributes,
    mapping_attributes,
)
from connector.directory.presets import (
    ADDRESS_ATTRIBUTES,
    ROOT_DSE_ATTRIBUTES,
    SAMPLE_ATTRIBUTES,
    PresetCheck,
    PresetDetection,
    detect_from_entries,
    detect_from_root_dse,
    mapping_for,
    preset_name,
)
from connector.domain.directory import DirectoryAnswer, DirectoryEntry
from connector.errors import CredentialsRefused, InvariantError, RetriableError
from connector.policy.addresses import address_spellings

_PAGED_RESULTS_OID = "1.2.840.113556.1.4.319"
_TIME_LIMIT_EXCEEDED = 3
_SIZE_LIMIT_EXCEEDED = 4
PRESET_SAMPLE_SIZE = 200
"""Entries with an address read to detect the schema preset when the root DSE does not tell."""
RawEntry = tuple[str, dict[str, list[str]]]
"""``(dn, attributes)`` as text, the form ``entry_from_attributes`` and the mirror take."""
_BIND_REFUSED = (LDAPInvalidCredentialsResult, LDAPInappropriateAuthenticationResult)
"""Bind results that refuse the credentials (49, 48): the same on every replica, so never tried again."""


@dataclass(frozen=True)
class LdapOptions:
    """How to reach and search the server (built from the settings by the composition root)."""

    servers: tuple[str, ...]
    base_dn: str
    user_filter: str = "(objectClass=*)"
    bind_dn: str | None = None
    bind_password: SecretStr | None = field(default=None, repr=False)
    start_tls: bool = False
    ca_file: Path | None = None
    tls_verify: bool = True
    connect_timeout_seconds: float = 5
    timeout_seconds: float = 30
    page_size: int = 500
    batch_size: int = 100
    extra_attributes: tuple[str, ...] = ()
    change_attribute: str = "modifyTimestamp"


def or_filter(attributes: Sequence[str], addresses: Sequence[str], *, proxy_attribute: str | None = None) -> str:
    """``(|(mail=a)(mailAlternateAddress=a)...)`` over every attribute and address, values escaped.

    ``proxy_attribute`` values are compared as ``smtp:address``; AD matches them
    case-insensitively, so this also finds the ``SMTP:`` primary.
    """
    terms: list[str] = []
    for escaped in (escape_filter_chars(s) for a in addresses for s in address_spellings(a)):
        for attribute in attributes:
            if attribute == proxy_attribute:
                terms.append(f"({attribute}=smtp:{escaped})")
            else:
                terms.append(f"({attribute}={escaped})")
    return f"(|{''.join(terms)})"


def and_filter(*filters: str) -> str:
    """``(&f1f2...)`` of filters that are each already parenthesised."""
    wrapped = [f if f.startswith("(") else f"({f})" for f in filters]
    return wrapped[0] if len(wrapped) == 1 else f"(&{''.join(wrapped)})"


class LdapDirectory:
    """``Directory`` backed by LDAP servers (failover in the configured order).

    One connection is kept open between calls and reopened after a failure.
    ``mapping`` None (``schema_preset: auto``) reads with the preset detected at
    the first connection.
    """

    def __init__(
        self, options: LdapOptions, mapping: AttributeMapping | None, logger: logging.Logger | None = None
    ) -> None:
        self._options = options
        self._configured = mapping
        self._mapping = mapping
        self._log = logger or logging.getLogger(__name__)
        self._connection: Connection | None = None
        self._lock = threading.RLock()
        self._detection: PresetDetection | None = None
        self._detection_tried = False
        self._attributes = self._fetched(mapping) if mapping is not None else ()

    @property
    def mapping(self) -> AttributeMapping | None:
        """The configured mapping; ``None`` under ``auto`` (see ``resolved_mapping``). Never connects."""
        return self._configured

    def resolved_mapping(self) -> AttributeMapping:
        """The mapping entries are read with; under ``auto`` this connects to detect it."""
        with self._guard("detect the schema preset"):
            return self._in_use()

    def preset_check(self) -> PresetCheck | None:
        """The configured preset next to what the server looks like; ``None`` until it was asked."""
        if self._detection is None:
            return None
        return PresetCheck(preset_name(self._configured), self._detection)

    @property
    def options(self) -> LdapOptions:
        return self._options

    def describe(self) -> str:
        """One line for reports: servers and base DN, never the password."""
        return f"LDAP {', '.join(self._options.servers)} base {self._options.base_dn}"

    def lookup(self, addresses: Sequence[str]) -> Mapping[str, DirectoryAnswer]:
        """Answer each (already normalised) address, ``batch_size`` addresses per search."""
        return lookup_in_batches(addresses, self._options.batch_size, self._lookup_batch)

    def _lookup_batch(self, batch: list[str]) -> dict[str, DirectoryAnswer]:
        return answers_for(batch, self._search_entries(batch))

    def lookup_one_by_one(self, addresses: Sequence[str]) -> Mapping[str, DirectoryAnswer]:
        """One search per address: the slow baseline the benchmark compares against."""
        answers: dict[str, DirectoryAnswer] = {}
        for address in addresses:
            answers.update(answers_for([address], self._search_entries([address])))
        return answers

    def count_entries(self) -> int:
        """How many objects the base DN and user filter let the connector see."""
        with self._guard("count entries") as connection:
            return sum(1 for _ in self._paged(connection, self._options.user_filter, ["1.1"]))

    def read_entries(self, changed_since: str | None = None) -> Iterator[RawEntry]:
        """Every visible object with an address attribute (paged), or only those changed since a mark.

        ``changed_since`` compares ``change_attribute`` with ``>=`` (a generalized
        time for modifyTimestamp, a number for uSNChanged).
        """
        with self._guard("read entries") as connection:
            present = "(|" + "".join(f"({name}=*)" for name in address_attributes(self._in_use())) + ")"
            filters = [self._options.user_filter, present]
            if changed_since is not None:
                filters.append(f"({self._options.change_attribute}>={escape_filter_chars(changed_since)})")
            for dn, raw in self._paged(connection, and_filter(*filters), list(self._attributes)):
                yield dn, _texts(raw)

    def close(self) -> None:
        """Drop the connection (the next call opens a new one)."""
        with self._lock:
            self._drop()

    def _search_entries(self, addresses: Sequence[str]) -> list[DirectoryEntry]:
        with self._guard(f"look up {len(addresses)} address(es)") as connection:
            mapping = self._in_use()
            lookup = or_filter(
                address_attributes(mapping), addresses, proxy_attribute=mapping.proxy_addresses_attribute
            )
            search_filter = and_filter(self._options.user_filter, lookup)
            return [
                entry_from_attributes(dn, _texts(raw), mapping)
                for dn, raw in self._paged(connection, search_filter, list(self._attributes))
            ]

    def _in_use(self) -> AttributeMapping:
        """The mapping once connected (``_connect`` resolves ``auto``)."""
        if self._mapping is None:
            raise InvariantError("LDAP: the auto preset was used before the first connection")
        return self._mapping

    def _fetched(self, mapping: AttributeMapping) -> tuple[str, ...]:
        """Attributes every search asks for."""
        options = self._options
        return tuple(dict.fromkeys([*mapping_attributes(mapping), *options.extra_attributes, options.change_attribute]))

    def _detect_preset(self, connection: Connection) -> None:
        """Tell which preset fits the server, once per adapter; resolves ``auto``.

        Under ``auto`` a failure is the directory's failure (nothing can be read
        without a mapping); with a configured preset it only costs the warning.
        """
        try:
            detection = detect_from_root_dse(self._root_dse(connection)) or detect_from_entries(
                self._sample(connection)
            )
        except (LDAPException, OSError) as exc:
            if self._configured is None:
                raise
            self._detection_tried = True
            self._log.warning("could not tell which schema preset fits the directory: %s", exc)
            return
        self._detection_tried = True
        self._detection = detection
        if self._mapping is None:
            self._mapping = mapping_for(detection)
            self._attributes = self._fetched(self._mapping)
        # At INFO: a mismatch is a warning in the run report and in `directory check`.
        self._log.info("LDAP directory: %s", PresetCheck(preset_name(self._configured), detection).describe())

    def _root_dse(self, connection: Connection) -> dict[str, list[str]]:
        """The root DSE's AD markers; empty when the server does not let us read it."""
        try:
            connection.search("", "(objectClass=*)", search_scope=BASE, attributes=list(ROOT_DSE_ATTRIBUTES))
        except LDAPOperationResult as exc:  # refused or not there: the entries will tell
            self._log.debug("root DSE not readable: %s", exc)
            return {}
        entries = [item for item in connection.response or () if item.get("type") == "searchResEntry"]
        return _texts(entries[0]["raw_attributes"]) if entries else {}

    def _sample(self, connection: Connection) -> list[dict[str, list[str]]]:
        """Up to ``PRESET_SAMPLE_SIZE`` visible entries with an address (a size limit just ends the sample)."""
        present = "(|" + "".join(f"({name}=*)" for name in ADDRESS_ATTRIBUTES) + ")"
        connection.search(
            self._options.base_dn,
            and_filter(self._options.user_filter, present),
            search_scope=SUBTREE,
            attributes=list(SAMPLE_ATTRIBUTES),
            size_limit=PRESET_SAMPLE_SIZE,
        )
        return [
            _texts(item["raw_attributes"]) for item in connection.response or () if item.get("type") == "searchResEntry"
        ]

    def _paged(self, connection: Connection, search_filter: str, attributes: list[str]) -> Iterator[RawBytesEntry]:
        cookie: bytes | None = None
        while True:
            connection.search(
                self._options.base_dn,
                search_filter,
                search_scope=SUBTREE,
                attributes=attributes,
                paged_size=self._options.page_size,
                paged_cookie=cookie,
            )
            result = connection.result or {}
            # ldap3 does not raise for these two: a partial answer must never look complete.
            if result.get("result") in (_SIZE_LIMIT_EXCEEDED, _TIME_LIMIT_EXCEEDED):
                raise _LimitExceeded(str(result.get("description")))
            for item in connection.response or ():
                if item.get("type") == "searchResEntry":  # skip continuation references
                    yield item["dn"], item["raw_attributes"]
            control = result.get("controls", {}).get(_PAGED_RESULTS_OID, {})
            cookie = control.get("value", {}).get("cookie")
            if not cookie:
                return

    @contextmanager
    def _guard(self, what: str) -> Iterator[Connection]:
        """The open connection; every ldap3 / socket failure becomes ``RetriableError``."""
        with self._lock:
            try:
                yield self._connect()
            except (LDAPSizeLimitExceededResult, LDAPTimeLimitExceededResult, _LimitExceeded) as exc:
                self._drop()
                raise RetriableError(f"LDAP size or time limit hit while trying to {what}: {exc}") from exc
            except (LDAPException, OSError, _AllServersFailed) as exc:
                self._drop()
                raise RetriableError(f"LDAP directory unavailable ({what}): {exc}") from exc

    def _connect(self) -> Connection:
        if self._connection is not None and not self._connection.closed:
            return self._connection
        failures: list[str] = []
        for url in self._options.servers:
            try:
                self._connection = self._open(url)
            except _BIND_REFUSED as exc:  # every replica holds the same account: asking again only locks it out
                who = self._options.bind_dn or "anonymous"
                raise CredentialsRefused(
                    f"LDAP server {url} refused the bind of {who}: {exc} (see directory.bind_dn, bind_password)"
                ) from exc
            except (LDAPException, OSError) as exc:
                # Next server; a refused certificate is usually the same everywhere, but try.
                self._log.warning("LDAP server %s failed: %s", url, exc)
                failures.append(f"{url}: {exc}")
                continue
            self._log.info("connected to %s", url)
            if not self._detection_tried:
                self._detect_preset(self._connection)
            return self._connection
        raise _AllServersFailed("; ".join(failures))

    def _open(self, url: str) -> Connection:
        options = self._options
        password = options.bind_password.get_secret_value() if options.bind_password is not None else None
        connection = Connection(
            self._server(url),
            user=options.bind_dn,
            password=password,
            authentication=SIMPLE if options.bind_dn else ANONYMOUS,
            auto_bind=False,
            read_only=True,
            raise_exceptions=True,
            receive_timeout=max(1, round(options.timeout_seconds)),
            auto_referrals=False,
        )
        try:
            connection.open()
            if options.start_tls:
                connection.start_tls()
            connection.bind()
        except BaseException:
            connection.unbind()
            raise
        return connection

    def _server(self, url: str) -> Server:
        options = self._options
        parts = urlsplit(url)
        use_ssl = parts.scheme == "ldaps"
        tls = None
        if use_ssl or options.start_tls:
            tls = Tls(
                validate=ssl.CERT_REQUIRED if options.tls_verify else ssl.CERT_NONE,
                ca_certs_file=str(options.ca_file) if options.ca_file else None,
                sni=parts.hostname,
            )
        return Server(
            parts.hostname,
            port=parts.port or (636 if use_ssl else 389),
            use_ssl=use_ssl,
            tls=tls,
            get_info=NONE,
            connect_timeout=options.connect_timeout_seconds,
        )

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.unbind()
            except (LDAPException, OSError) as exc:  # already broken; nothing more to do
                self._log.debug("unbind after failure: %s", exc)


RawBytesEntry = tuple[str, dict[str, list[bytes]]]


class _LimitExceeded(Exception):
    """The server stopped a search at its size or time limit."""


class _AllServersFailed(Exception):
    """No configured server could be connected to and bound."""


def _texts(raw: Mapping[str, Sequence[bytes]]) -> dict[str, list[str]]:
    return {name: [text_of(value) for value in values] for name, values in raw.items() if values}
