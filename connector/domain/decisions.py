"""Decisions about candidates, with reasons a person can read."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Method(StrEnum):
    """How a domain's users are created (see the seed product note)."""

    SMARTCREATE = "smartcreate"
    AUTOCREATE = "autocreate"
    AUTO = "auto"  # Autocreate while the downstream is known to be strict, else SmartCreate
    OFF = "off"


class CandidateState(StrEnum):
    """Where a candidate address stands after the latest run."""

    PENDING = "pending"  # not qualified yet; evidence keeps accumulating
    CREATED = "created"  # user (or alias) exists in the compliance directory
    SKIPPED = "skipped"  # decided against, with a reason
    DEFERRED = "deferred"  # a dependency failed; retried next run
    HELD = "held"  # waiting for a person: review queue (mode approve) or a creation limit


class Outcome(StrEnum):
    """What the run does with a candidate."""

    CREATE_USER = "create_user"
    ADD_ALIAS = "add_alias"
    SKIP = "skip"
    WAIT = "wait"
    DEFER = "defer"
    HOLD = "hold"  # would create, but waits for a person (connector approve)


class Reason(StrEnum):
    """Why; stable strings, documented in docs/report.md."""

    QUALIFIED = "qualified"
    BELOW_THRESHOLD = "below_threshold"
    NO_SMTP_ACCEPT = "no_smtp_accept"
    REJECTED_BY_SERVER = "rejected_by_server"
    ALREADY_KNOWN = "already_known"
    ALIAS_OF = "alias_of"
    NOT_IN_DIRECTORY = "not_in_directory"
    NOT_A_USER = "not_a_user"
    DISABLED_IN_DIRECTORY = "disabled_in_directory"
    DOMAIN_NOT_MANAGED = "domain_not_managed"
    METHOD_OFF = "method_off"
    DIRECTORY_UNAVAILABLE = "directory_unavailable"
    TARGET_UNAVAILABLE = "target_unavailable"
    TARGET_REJECTED = "target_rejected"
    # Safety guards (docs/safety.md)
    EXCLUDED_ADDRESS = "excluded_address"  # postmaster, abuse, noreply, bounce/VERP ...
    BLOCKED = "blocked"  # connector block ADDRESS
    DENIED = "denied"  # connector deny
    CATCH_ALL_SUSPENDED = "catch_all_suspended"  # autocreate on a server that accepts everything
    CATCH_ALL_UNKNOWN = "catch_all_unknown"  # the probe could not run: autocreate waits
    DICTIONARY_ATTACK = "dictionary_attack"
    LIMIT_REACHED = "limit_reached"
    AWAITING_APPROVAL = "awaiting_approval"
    NOT_IN_PLAN = "not_in_plan"


@dataclass(frozen=True, slots=True)
class Decision:
    """The policy's verdict on one canonical address.

    For ``CREATE_USER`` and ``ADD_ALIAS`` the ``user_address`` is the primary
    address the directory gave; for an alias it differs from ``address``.
    """

    address: str
    outcome: Outcome
    reason: Reason
    detail: str = ""
    org: str | None = None
    method: Method | None = None
    user_address: str | None = None
    aliases: tuple[str, ...] = ()
    display_name: str | None = None
    external_id: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    recheck_at: datetime | None = None  # evidence is stamped later than ``now``: decide again then
    directory_address: str | None = None  # CREATE_USER: the primary as the directory spells it, when not canonical

    def instead(self, outcome: Outcome, reason: Reason, detail: str) -> Decision:
        """The same candidate (address, org, method) with another outcome, e.g. when applying it failed."""
        return Decision(self.address, outcome, reason, detail, org=self.org, method=self.method)

    @property
    def state(self) -> CandidateState:
        """The candidate state this decision leads to once applied."""
        return {
            Outcome.CREATE_USER: CandidateState.CREATED,
            Outcome.ADD_ALIAS: CandidateState.CREATED,
            Outcome.SKIP: CandidateState.SKIPPED,
            Outcome.WAIT: CandidateState.PENDING,
            Outcome.DEFER: CandidateState.DEFERRED,
            Outcome.HOLD: CandidateState.HELD,
        }[self.outcome]
