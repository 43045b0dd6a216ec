"""The conditions a finished run reports, read from its report (pure).

One reading of the report serves the service log (a WARNING per condition) and the
notifications. Texts name domains, sources and counts, never a full address: an
address in an error message becomes ``...@domain`` (full addresses only at DEBUG).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from connector.domain.notices import Condition, EventKind
from connector.domain.safe_text import printable
from connector.domain.times import to_the_second

DIRECTORY_STAGES = frozenset({"directory", "attack_guard"})
"""Report error stages that mean "the directory did not answer"."""
LIMIT_STAGES = {"limits": "creations", "lifecycle_limits": "lifecycle"}
"""Report error stage of a limit -> the subject of its condition."""
DETAIL_CHARS = 300

_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@((?:[A-Za-z0-9-]+\.)+[A-Za-z0-9-]{2,})")


def hide_addresses(text: object, limit: int = DETAIL_CHARS) -> str:
    """``text`` on one line, control characters escaped, each ``local@domain`` shown as ``...@domain``."""
    line = _ADDRESS.sub(r"...@\1", printable(text))
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _time(value: object) -> str:
    """An ISO time from a report, to the second, UTC shown as ``Z``."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return hide_addresses(value, 40)
    return to_the_second(moment)


def attacks(report: Mapping[str, Any]) -> list[Condition]:
    """One condition per domain with a dictionary attack in this run."""
    found: dict[str, Condition] = {}
    for guard in report.get("guards") or []:
        if guard.get("guard") != "dictionary_attack" or not guard.get("attack"):
            continue
        domain = str(guard.get("domain", ""))
        # The report lists only the first addresses of a large burst; ``address_count`` has them all.
        count = int(guard.get("address_count") or len(guard.get("addresses") or []))
        if domain in found:  # two bursts at one domain in one run: one condition, both counted
            count += int(found[domain].value or 0)
        text = (
            f"dictionary attack at {domain}: {count} never-seen addresses first seen between "
            f"{_time(guard.get('first_at'))} and {_time(guard.get('last_at'))}, "
            f"{float(guard.get('unknown_share') or 0):.0%} unknown to the directory; none of them is created"
        )
        found[domain] = Condition(EventKind.DICTIONARY_ATTACK, domain, text, value=str(count))
    return list(found.values())


def limits(errors: Sequence[Mapping[str, Any]]) -> list[Condition]:
    """Creations or lifecycle changes held because a limit was reached."""
    found: dict[str, Condition] = {}
    for error in errors:
        subject = LIMIT_STAGES.get(str(error.get("stage")))
        if subject is not None and subject not in found:
            found[subject] = Condition(EventKind.LIMIT_REACHED, subject, hide_addresses(error.get("error")))
    return list(found.values())


def quarantine(report: Mapping[str, Any]) -> list[Condition]:
    """The target, when this run found it quarantined."""
    health = report.get("target_health") or {}
    if not health.get("quarantined"):
        return []
    until = health.get("quarantined_until")
    failures = health.get("consecutive_failures")
    text = f"target quarantined until {_time(until)}" if until else "target quarantined"
    if failures:
        text += f" after {failures} consecutive failed request(s)"
    if health.get("last_error"):
        text += f"; last error: {hide_addresses(health['last_error'], 200)}"
    return [Condition(EventKind.TARGET_QUARANTINED, "target", text + "; creations are deferred")]


def directory(errors: Sequence[Mapping[str, Any]], description: str) -> list[Condition]:
    """The directory, when it did not answer in this run (its first error)."""
    for error in errors:
        if error.get("stage") in DIRECTORY_STAGES:
            where = f" ({hide_addresses(description, 120)})" if description else ""
            text = f"directory{where} did not answer: {hide_addresses(error.get('error'), 200)}"
            return [Condition(EventKind.DIRECTORY_UNREACHABLE, "directory", text)]
    return []


def sources(errors: Iterable[Mapping[str, Any]], instance: str) -> list[Condition]:
    """One condition per log source in error (per instance: each reads its own logs)."""
    found: dict[str, Condition] = {}
    for error in errors:
        if error.get("stage") != "source":
            continue
        name = str(error.get("source") or "?")
        if name not in found:
            text = f"source {hide_addresses(name, 100)}: {hide_addresses(error.get('error'), 240)}"
            found[name] = Condition(EventKind.SOURCE_ERROR, name, text, scope=instance)
    return list(found.values())


def catch_all(report: Mapping[str, Any]) -> list[Condition]:
    """Each checked domain's catch-all status (a change of it is a warning)."""
    result = []
    for guard in report.get("guards") or []:
        if guard.get("guard") == "catch_all" and guard.get("domain"):
            effect = str(guard.get("effect") or "")
            detail = hide_addresses(guard.get("detail") or "", 160)
            text = f"catch-all status of {guard['domain']} is {guard.get('status')}: {effect}"
            if detail:
                text += f" ({detail})"
            result.append(Condition(EventKind.CATCH_ALL, str(guard["domain"]), text, value=str(guard.get("status"))))
    return result


def run_conditions(report: Mapping[str, Any], instance: str) -> list[Condition]:
    """Every condition of a decide run, from its report (``RunReport.to_json()``)."""
    errors = [e for e in report.get("errors") or [] if isinstance(e, Mapping)]
    return [
        *attacks(report),
        *limits(errors),
        *quarantine(report),
        *directory(errors, str(report.get("directory") or "")),
        *sources(errors, instance),
        *catch_all(report),
    ]
