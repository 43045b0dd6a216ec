"""Accuracy against ground truth: five weeks of generated mail flow and a matching directory.

The flow has real people, aliases, a domain alias, a subdomain, an accept-all domain that
bounces later, a strict domain, a dictionary-attack burst and the 14-day edges. The
connector must create exactly the people the ground truth says, never a bogus or a
duplicate user; the bare rule (3 messages in 14 days, or any 250, no directory, no guard)
is computed on the same flow to show what the safety layers prevent.

Then the directory changes (a leaver, a disabled account, aliases added and removed, a new
display name, an OU move that an org rule maps to another org, a new primary address) and
the next run must bring the target exactly in line, and the one after must change nothing.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from freezegun import freeze_time
from sqlalchemy import select

from connector.app import build_connector, utc_now
from connector.compliance.embedded import EmbeddedComplianceDirectory
from connector.config import load_settings
from connector.domain.report import LIFECYCLE_CHANGES, LIFECYCLE_LISTS
from connector.store.lifecycle import managed_users
from connector.store.models import EvidenceRow, TargetAliasRow, TargetOrgRow, TargetUserRow
from connector.store.repository import evidence_from_row
from jobs.cycle import run_cycle
from tests.conftest import utc
from tests.mailflow import AdDirectory, MailFlow

T0 = utc("2026-10-20T08:00:00")
NOW = "2026-11-25T12:00:00Z"
DAY = timedelta(days=1)


class Scenario:
    def __init__(self, seed: int = 6) -> None:
        self.rng = random.Random(seed)
        self.flow = MailFlow(
            relays={
                "acme.test": "mailstore.acme.test[10.0.0.5]:25",
                "acme.net": "mailstore.acme.test[10.0.0.5]:25",
                "mail.acme.test": "mailstore.acme.test[10.0.0.5]:25",
                "globex.test": "exch.globex.test[10.0.1.7]:25",
                "initech.test": "mx.initech.test[10.0.2.9]:25",
            }
        )
        self.ad = AdDirectory()
        self.expected: set[str] = set()  # ground truth: primary addresses that must become users
        self.people: dict[str, str] = {}  # every address of a real, enabled person -> their primary

    def person(self, primary: str, aliases: tuple[str, ...] = ()) -> None:
        self.ad.user(primary.partition("@")[0].upper(), primary, aliases)
        for address in (primary, *aliases):
            self.people[address] = primary

    def at(self, day: float) -> Any:
        """A time on ``day`` (days after T0) at a random office hour."""
        return T0 + timedelta(days=day, minutes=self.rng.randrange(0, 9 * 60))

    def messages(self, rcpts: list[str], days: list[float]) -> None:
        for rcpt, day in zip(rcpts, days, strict=True):
            self.flow.deliver(self.at(day), rcpt, sender=f"{self.word()}@partner.test")

    def word(self, n: int = 8) -> str:
        return "".join(self.rng.choice(string.ascii_lowercase) for _ in range(n))

    def build(self) -> None:
        rng = self.rng
        # acme.test: SmartCreate, subdomains stripped, acme.net is a domain alias.
        for i in range(30):
            self.person(f"p{i:02d}@acme.test", (f"p{i:02d}.alias@acme.test",))
        for i in range(10):  # three or more messages within 14 days at the primary address
            start = rng.uniform(0, 20)
            self.messages([f"p{i:02d}@acme.test"] * 4, [start, start + 3, start + 9, start + 12])
            self.expected.add(f"p{i:02d}@acme.test")
        for i in range(10, 15):  # qualified at the alias; p10-p12 qualify at the primary as well
            start = rng.uniform(0, 20)
            self.messages(
                [f"p{i:02d}.alias@acme.test"] * 3 + [f"p{i:02d}@acme.test"], [start, start + 2, start + 5, 30]
            )
            if i < 13:
                self.messages([f"p{i:02d}@acme.test"] * 2, [31, 32])
            self.expected.add(f"p{i:02d}@acme.test")
        for i in range(15, 18):  # one message each as acme.test, acme.net, mail.acme.test
            rcpts = [f"p{i:02d}@acme.test", f"P{i:02d}@acme.net", f"p{i:02d}@Mail.Acme.test"]
            self.messages(rcpts, [5, 8, 11])
            self.expected.add(f"p{i:02d}@acme.test")
        # The 14-day edge: third message at 14 days exactly (no), 14 days minus a second (yes), plus a second (no).
        for i, span in (
            (18, timedelta(days=14)),
            (19, timedelta(days=14, seconds=-1)),
            (20, timedelta(days=14, seconds=1)),
        ):
            first = T0 + timedelta(days=2, hours=i)
            for t in (first, first + DAY, first + span):
                self.flow.deliver(t, f"p{i:02d}@acme.test")
        self.expected.add("p19@acme.test")
        for i in range(21, 24):  # two messages only
            self.messages([f"p{i:02d}@acme.test"] * 2, [3, 6])
        first = T0 + timedelta(days=4)  # one message delivered twice (two queue ids) and one more: 2 distinct
        for t in (first, first + timedelta(hours=6)):
            self.flow.deliver(t, "p24@acme.test", message_id="twice@partner.test")
        self.flow.deliver(first + 2 * DAY, "p24@acme.test")
        # Not people, or not any more: a group, a shared mailbox, a contact, a disabled account.
        self.ad.group("Team", "team@acme.test")
        self.ad.user("Front desk", "frontdesk@acme.test", shared=True)
        self.ad.contact("Vendor", "vendor@acme.test")
        self.ad.user("Leaver", "leaver@acme.test", disabled=True)
        self.ad.user("Postmaster", "postmaster@acme.test")
        for rcpt in ("team@acme.test", "frontdesk@acme.test", "vendor@acme.test", "leaver@acme.test"):
            self.messages([rcpt] * 3, [1, 4, 7])
        self.messages(["postmaster@acme.test"] * 3, [2, 5, 8])
        for _ in range(5):  # unknown addresses refused at RCPT TO, spread out
            self.flow.refused_at_rcpt(self.at(rng.uniform(0, 30)), f"{self.word(6)}@acme.test")

        # globex.test: method auto; Exchange-style downstream that accepts everything and bounces later.
        for i in range(15):
            self.person(f"g{i:02d}@globex.test")
        for i in range(8):
            start = rng.uniform(0, 18)
            self.messages([f"g{i:02d}@globex.test"] * 3, [start, start + 4, start + 8])
            self.expected.add(f"g{i:02d}@globex.test")
        for i in range(8, 12):  # one accepted message: Autocreate would take them, SmartCreate waits
            self.messages([f"g{i:02d}@globex.test"], [rng.uniform(0, 30)])
        for _ in range(6):  # nobody there: accepted with 250, bounced after DATA later
            ghost = f"{self.word(7)}@globex.test"
            start = rng.uniform(0, 20)
            self.messages([ghost] * 3, [start, start + 1, start + 2])
            self.flow.bounced_after_data(self.at(start + 3), ghost)
        for _ in range(2):  # nobody there, no bounce seen (yet): SmartCreate qualifies, the directory says no
            trap = f"{self.word(7)}@globex.test"
            self.messages([trap] * 3, [10, 11, 12])
        burst_at = T0 + timedelta(days=25, hours=3)  # dictionary attack: 40 addresses in 8 minutes
        for n in range(40):
            victim = f"{self.word(rng.randrange(4, 9))}{rng.randrange(100)}@globex.test"
            self.flow.deliver(burst_at + timedelta(seconds=12 * n), victim, sender="promo@spam.example")

        # initech.test: Autocreate on a strict downstream.
        for i in range(10):
            self.person(f"i{i:02d}@initech.test")
        for i in range(6):
            self.messages([f"i{i:02d}@initech.test"], [rng.uniform(0, 30)])
            self.expected.add(f"i{i:02d}@initech.test")
        for _ in range(8):
            self.flow.refused_at_rcpt(self.at(rng.uniform(0, 30)), f"{self.word(6)}@initech.test")

    def write(self, root: Path) -> Path:
        self.flow.write(root / "mail.log")
        self.ad.write(root / "directory.ldif")
        config = {
            "state": {"url": f"sqlite:///{root / 'state.sqlite'}"},
            "sources": [{"name": "gw", "path": "mail.log"}],
            "domains": {
                "acme.test": {"org": "Acme", "method": "smartcreate", "strip_subdomains": True},
                "globex.test": {"org": "Globex", "method": "auto"},
                "initech.test": {"org": "Initech", "method": "autocreate"},
            },
            "domain_aliases": {"acme.net": "acme.test"},
            "directory": {"type": "ldif", "path": "directory.ldif", "schema_preset": "active_directory"},
            "org_rules": [{"org": "Acme Sales", "dn_within": f"OU=Sales,{self.ad.base}"}],  # nobody at first
        }
        (root / "connector.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
        return root / "connector.yaml"


def bare_rule(connector: Any) -> set[str]:
    """3 distinct messages within 14 days, or any 250 on an Autocreate-ish domain; no directory, no guard."""
    created = set()
    with connector.sessions() as session:
        for row in session.scalars(select(EvidenceRow)):
            evidence = evidence_from_row(row)
            method = connector.settings.domains[row.domain].method.value
            if evidence.qualified_at is not None or (method in ("autocreate", "auto") and evidence.accepted_at):
                created.add(evidence.address)
    return created


def test_zero_bogus_zero_duplicates_every_real_user_created(tmp_path: Path) -> None:
    scenario = Scenario()
    scenario.build()
    config = scenario.write(tmp_path)
    connector = build_connector(load_settings(config), {})
    with freeze_time(NOW):
        report = run_cycle(connector, clock=utc_now)
    assert report.status == "ok", report.errors
    target = connector.target
    assert isinstance(target, EmbeddedComplianceDirectory)
    users = {primary: aliases for members in target.users_by_org().values() for primary, aliases in members}

    bogus = set(users) - set(scenario.people.values())
    assert bogus == set()
    assert set(users) == scenario.expected  # every real user with 3 messages in 14 days (or a strict 250)
    persons = [scenario.people[u] for u in users]
    assert len(persons) == len(set(persons))  # no person twice
    for i in range(10, 15):  # qualified through the alias: one user, alias attached
        assert users[f"p{i:02d}@acme.test"] == [f"p{i:02d}.alias@acme.test"]

    skipped = {s["address"]: s["reason"] for s in report.skipped}
    assert skipped["p18@acme.test"] == skipped["p20@acme.test"] == "below_threshold"
    assert skipped["g08@globex.test"] == "below_threshold"  # auto fell back to SmartCreate
    assert sum(1 for r in skipped.values() if r == "dictionary_attack") == 40
    assert {skipped[a] for a in ("team@acme.test", "frontdesk@acme.test", "vendor@acme.test")} == {"not_a_user"}
    assert skipped["leaver@acme.test"] == "disabled_in_directory"
    assert skipped["postmaster@acme.test"] == "excluded_address"
    catch_all = {g["domain"]: g["status"] for g in report.guards if g["guard"] == "catch_all"}
    assert catch_all == {"globex.test": "accept_all", "initech.test": "strict"}

    bare = bare_rule(connector)
    bare_bogus = {a for a in bare if a not in scenario.people}
    bare_duplicates = len(bare & set(scenario.people)) - len({scenario.people[a] for a in bare if a in scenario.people})
    print(
        f"\naccuracy: connector created {len(users)} users (expected {len(scenario.expected)}), 0 bogus, 0 duplicates;"
        f"\n          bare rule would create {len(bare)}: {len(bare_bogus)} bogus, {bare_duplicates} duplicate(s),"
        f" {len(bare) - len(bare_bogus) - bare_duplicates} right"
    )
    assert len(bare_bogus) >= 40 + 6 + 2  # the attack, the ghosts, the traps
    assert bare_duplicates == 3  # p10-p12: alias and primary are two "users" for the bare rule
    lifecycle_phase(scenario, config, connector)


# -- lifecycle: the directory changes after the creations, the next run converges exactly -------------------

Target = dict[str, tuple[str, tuple[str, ...], str | None, bool]]  # primary -> (org, aliases, display name, active)

SECTIONS = LIFECYCLE_CHANGES


def target_state(connector: Any) -> Target:
    """The embedded target read back from its tables."""
    with connector.sessions() as session:
        orgs = {o.id: o.name for o in session.scalars(select(TargetOrgRow))}
        aliases: dict[int, list[str]] = {}
        for alias in session.scalars(select(TargetAliasRow).order_by(TargetAliasRow.address)):
            aliases.setdefault(alias.user_id, []).append(alias.address)
        return {
            u.primary_address: (orgs[u.org_id], tuple(aliases.get(u.id, ())), u.display_name, bool(u.active))
            for u in session.scalars(select(TargetUserRow))
        }


def edit_person(scenario: Scenario, name: str, edit: Callable[[list[str]], list[str] | None]) -> None:
    """Change (or, when ``edit`` returns None, delete) the directory entry of person ``name``."""
    entries = scenario.ad.entries
    (index,) = [i for i, e in enumerate(entries) if e.startswith(f"dn: CN={name},OU=People,")]
    lines = edit(entries[index].splitlines())
    if lines is None:
        del entries[index]
    else:
        entries[index] = "\n".join(lines)


def replaced(old: str, *new: str) -> Callable[[list[str]], list[str]]:
    def edit(lines: list[str]) -> list[str]:
        assert old in lines, (old, lines)
        i = lines.index(old)
        return [*lines[:i], *new, *lines[i + 1 :]]

    return edit


def lifecycle_phase(scenario: Scenario, config: Path, connector: Any) -> None:
    before = target_state(connector)
    assert all(active for _, _, _, active in before.values())
    expected = dict(before)

    def expect(address: str, **changes: Any) -> None:
        org, aliases, display_name, active = expected.pop(address)
        new = {"org": org, "aliases": aliases, "display_name": display_name, "active": active, **changes}
        expected[new.pop("primary", address)] = (
            new["org"],
            tuple(sorted(new["aliases"])),
            new["display_name"],
            new["active"],
        )

    edit_person(scenario, "P00", replaced("userAccountControl: 512", "userAccountControl: 514"))
    expect("p00@acme.test", active=False)
    edit_person(scenario, "P01", lambda lines: None)
    expect("p01@acme.test", active=False)
    edit_person(scenario, "P02", lambda lines: [*lines, "proxyAddresses: smtp:p02.second@acme.test"])
    expect("p02@acme.test", aliases=("p02.alias@acme.test", "p02.second@acme.test"))
    edit_person(scenario, "P03", replaced("proxyAddresses: smtp:p03.alias@acme.test"))
    expect("p03@acme.test", aliases=())
    edit_person(scenario, "P04", replaced("displayName: P04", "displayName: Paula Four"))
    expect("p04@acme.test", display_name="Paula Four")
    edit_person(
        scenario, "P05", replaced(f"dn: CN=P05,OU=People,{scenario.ad.base}", f"dn: CN=P05,OU=Sales,{scenario.ad.base}")
    )
    expect("p05@acme.test", org="Acme Sales")
    edit_person(
        scenario,
        "P06",
        replaced(
            "proxyAddresses: SMTP:p06@acme.test",
            "proxyAddresses: SMTP:p06.new@acme.test",
            "proxyAddresses: smtp:p06@acme.test",
        ),
    )
    expect("p06@acme.test", primary="p06.new@acme.test", aliases=("p06.alias@acme.test", "p06@acme.test"))
    edit_person(scenario, "G00", replaced("userAccountControl: 512", "userAccountControl: 514"))
    expect("g00@globex.test", active=False)
    edit_person(scenario, "I00", lambda lines: None)
    expect("i00@initech.test", active=False)
    edit_person(scenario, "P21", lambda lines: None)  # never created: nothing to do
    scenario.ad.write(config.parent / "directory.ldif")

    connector = build_connector(load_settings(config), {})  # a new one: the LDIF directory reads its file once
    with freeze_time(T0 + timedelta(days=37)):
        report = run_cycle(connector, clock=utc_now).to_json()
    assert report["status"] == "ok", report["errors"]
    assert target_state(connector) == expected
    lifecycle = report["lifecycle"]
    made = {section: sorted(c["address"] for c in lifecycle[section]) for section in SECTIONS if lifecycle[section]}
    assert made == {
        "suspended": ["g00@globex.test", "i00@initech.test", "p00@acme.test", "p01@acme.test"],
        "moved": ["p05@acme.test"],
        "updated": ["p04@acme.test", "p06@acme.test"],
        "aliases_added": ["p02@acme.test", "p06@acme.test"],  # p06: its old primary, kept as an alias
        "aliases_removed": ["p03@acme.test"],
    }
    reasons = {c["address"]: c["reason"] for c in lifecycle["suspended"]}
    assert reasons == {
        "p00@acme.test": "disabled_in_directory",
        "g00@globex.test": "disabled_in_directory",
        "p01@acme.test": "not_in_directory",
        "i00@initech.test": "not_in_directory",
    }
    assert lifecycle["managed"] == len(before) and lifecycle["unknown"] == []
    with connector.sessions() as session:  # the renamed user's record follows it
        assert {u.address for u in managed_users(session)} == set(expected)

    with freeze_time(T0 + timedelta(days=38)):  # converged: the next run has nothing to do
        report = run_cycle(connector, clock=utc_now).to_json()
    assert report["status"] == "ok", report["errors"]
    assert not any(report["lifecycle"][section] for section in LIFECYCLE_LISTS)
    assert report["lifecycle"]["unchanged"] == len(before)
    assert target_state(connector) == expected
