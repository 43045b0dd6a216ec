"""Commands of the safety guards: probe, pending, approve, deny, block, plan, apply.

``pending``, ``approve`` and ``deny`` cover both kinds of held work: creations
(table ``staged``) and destructive lifecycle changes held by the lifecycle limits
(table ``held_changes``).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connector.app import Connector, utc_now
from connector.cli.common import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_PARTIAL,
    connector_from_args,
    not_an_address,
    printable,
)
from connector.cli.run_commands import exit_code_of_run
from connector.config.safety import ProbeTarget
from connector.domain.status import RunStatus
from connector.errors import RetriableError
from connector.policy import catch_all
from connector.policy.addresses import InvalidAddress, normalise_domain
from connector.policy.plans import PlanError, change_key, changes_from_report, differences, make_plan, read_plan
from connector.private_files import write_private
from connector.probe.smtp import SmtpCatchAllProbe
from connector.reporting.text import render_text
from connector.store import lifecycle as lifecycle_store
from connector.store import safety as store
from connector.store.models import HeldChangeRow, StagedRow

if TYPE_CHECKING:
    from jobs.decisions import Outcome


def _canonical(connector: Connector, address: str) -> str | None:
    try:
        return connector.address_map.canonical(address)
    except InvalidAddress as exc:
        print(f"error: {not_an_address(exc)}", file=sys.stderr)
        return None


def cmd_probe(args: argparse.Namespace) -> int:
    import logging

    connector = connector_from_args(args)
    try:
        domain = normalise_domain(args.domain)
    except InvalidAddress as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
    settings = connector.settings.safety.catch_all
    if args.server:
        host, _, port = args.server.rpartition(":")
        if not host or not port.isdigit():
            print(f"--server takes HOST:PORT, not {args.server!r}", file=sys.stderr)
            return EXIT_CONFIG
        settings = settings.model_copy(update={"probe": {domain: ProbeTarget(host=host, port=int(port))}})
    if domain not in settings.probe:
        print(f"no probe server for {domain}: set safety.catch_all.probe.{domain} or pass --server", file=sys.stderr)
        return EXIT_CONFIG
    probe = SmtpCatchAllProbe(settings, logging.getLogger("connector.probe.smtp"))
    now = utc_now()
    try:
        result = probe.probe(domain)
    except RetriableError as exc:
        print(f"probe failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finding = catch_all.probe_finding(result, settings.thresholds(), now)
    if domain in connector.settings.domains:
        from jobs.registry import command_locks

        # The cycle's locks around the write only: a cycle never finds its catch-all rows changed under it,
        # and no lock is held while the downstream server is asked.
        with command_locks(connector, "probe"), connector.sessions() as session:
            store.save_catch_all(session, finding)
            session.commit()
    print(f"{domain}: {finding.status.value}")
    print(f"  {finding.detail}")
    print(f"  trusted until {finding.expires_at.isoformat()}")
    return EXIT_OK


def _pending_json(row: StagedRow) -> dict[str, Any]:
    decision = row.decision
    return {
        "type": "creation",
        "address": row.address,
        "user": decision.get("user_address"),
        "org": decision.get("org"),
        "method": decision.get("method"),
        "aliases": decision.get("aliases", []),
        "held": row.reason,
        "run_id": row.run_id,
        "staged_at": row.staged_at.isoformat(),
        "evidence": decision.get("evidence", {}),
        "detail": decision.get("detail", ""),
    }


def _evidence_text(evidence: dict[str, Any]) -> str:
    if evidence.get("smtp_reply"):
        return f"SMTP {evidence['smtp_reply']} at {evidence.get('accepted_at')} ({evidence.get('message_id')})"
    messages = evidence.get("messages") or []
    return "; ".join(f"{m['at']} {m['message_id']}" for m in messages) or "no evidence kept"


def _held_json(row: HeldChangeRow) -> dict[str, Any]:
    change = lifecycle_store.change_from_json(row.change)
    return {
        "type": "lifecycle",
        "address": row.address,
        "kind": row.kind,
        "change": change.key(),
        "detail": change.detail,
        "held": row.why,
        "run_id": row.run_id,
        "held_at": row.held_at.isoformat(),
        "approved_at": row.approved_at.isoformat() if row.approved_at else None,
        "approved_by": row.approved_by,
    }


def cmd_pending(args: argparse.Namespace) -> int:
    connector = connector_from_args(args, read_only=True)  # before the first run: "no state yet", nothing created
    with connector.sessions() as session:
        rows = store.staged(session)
        held = lifecycle_store.held_changes(session)
    entries = [_pending_json(r) for r in rows]
    changes = [_held_json(r) for r in held]
    if args.format == "json":
        print(json.dumps(entries + changes, indent=2))
        return EXIT_OK
    if not entries and not changes:
        print("nothing pending")
    for entry in entries:
        user = entry["user"]
        via = f" (via {entry['address']})" if user != entry["address"] else ""
        line = f"{user}{via} -> {entry['org']}  [{entry['method']}] held: {entry['held']}, run {entry['run_id']}"
        print(printable(line))
        print(printable(f"    evidence: {_evidence_text(entry['evidence'])}"))  # message ids come from mail
        if entry["aliases"]:
            print(printable(f"    aliases: {', '.join(entry['aliases'])}"))
    if changes:
        print(f"lifecycle changes held for a person ({len(changes)}):")
    for change in changes:
        state = f"held: {change['held']}, run {change['run_id']}"
        if change["approved_at"]:
            state = f"approved by {change['approved_by']} at {change['approved_at']}: the next run makes it"
        org = change["change"].get("org")
        print(printable(f"{change['kind']} {change['address']}" + (f" (org {org})" if org else "") + f"  {state}"))
        print(printable(f"    {change['detail']}"))
    return EXIT_OK


def _latest_held_run(connector: Connector) -> int | None:
    with connector.sessions() as session:
        return max(
            (row.run_id for row in lifecycle_store.held_changes(session) if row.approved_at is None), default=None
        )


def _os_user() -> str:
    """Who typed the decision, for the audit log: the OS user (a container's bare uid has no name)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return f"uid {os.getuid()}"


def _decided(connector: Connector, outcome: Outcome) -> int:
    """Print what a decision did (``done`` lines on stdout, the rest on stderr); its exit code."""
    for line in outcome.done:
        print(printable(line))
    for line in outcome.problems:
        print(printable(line), file=sys.stderr)
    from jobs.decisions import DECIDED, DecisionStatus, republish

    if outcome.status in DECIDED and not outcome.refused:
        republish(connector, outcome.run_id, utc_now())  # the reports directory, as after a console decision
    if outcome.refused:
        return EXIT_FAILED
    return {DecisionStatus.DONE: EXIT_OK, DecisionStatus.NOTHING: EXIT_NOT_FOUND}.get(outcome.status, EXIT_PARTIAL)


def _review(args: argparse.Namespace, approve: bool) -> int:
    """``approve`` / ``deny``: ``jobs/decisions.py``, as the console's buttons, under the cycle's locks; audited."""
    from jobs import decisions

    if (args.address is None) == (args.run is None):
        print("give an ADDRESS or --run RUN_ID", file=sys.stderr)
        return EXIT_CONFIG
    connector = connector_from_args(args, read_only=True)  # nothing can be pending before the first run
    address = None if args.address is None else _canonical(connector, args.address)
    if args.address is not None and address is None:
        return EXIT_CONFIG
    verb: decisions.Verb = "approve" if approve else "deny"
    outcome = decisions.decide(
        connector, verb, address=address, run_id=args.run, who=_os_user(), client=decisions.CLI_CLIENT,
        now=utc_now(),
    )  # fmt: skip
    code = _decided(connector, outcome)
    if outcome.status is decisions.DecisionStatus.NOTHING and args.run is not None:
        latest = _latest_held_run(connector)
        if latest is not None:  # each run replaces the held lifecycle changes of the one before
            print(f"held lifecycle changes are those of run {latest}: connector {verb} --run {latest}", file=sys.stderr)
    return code


def cmd_approve(args: argparse.Namespace) -> int:
    return _review(args, approve=True)


def cmd_deny(args: argparse.Namespace) -> int:
    return _review(args, approve=False)


def cmd_block(args: argparse.Namespace) -> int:
    """Block (or unblock) the person an address belongs to: the user and every alias of theirs.

    Under the cycle's locks and audited, as ``approve`` and ``deny`` (``jobs/decisions.py``).
    """
    from jobs import decisions

    connector = connector_from_args(args, read_only=args.remove)  # a block may come before the first run
    address = _canonical(connector, args.address)
    if address is None:
        return EXIT_CONFIG
    who = _os_user()
    outcome = decisions.decide(
        connector, "unblock" if args.remove else "block", address=address, who=who, client=decisions.CLI_CLIENT,
        now=utc_now(), note=args.note or f"blocked by {who}",
    )  # fmt: skip
    code = _decided(connector, outcome)
    return EXIT_OK if code == EXIT_PARTIAL else code  # only the address blocked (see the note): still blocked


def cmd_plan(args: argparse.Namespace) -> int:
    from jobs.cycle import run_cycle
    from jobs.registry import command_locks

    connector = connector_from_args(args)
    with command_locks(connector, "plan"):  # its dry run stores a run and writes pages, as sync --dry-run
        report = run_cycle(connector, clock=utc_now, dry_run=True).to_json()
    if report["status"] is RunStatus.FAILED:
        print(render_text(report), end="", file=sys.stderr)
        return EXIT_FAILED
    changes = changes_from_report(report)
    plan = make_plan(changes, run_id=report["run_id"], made_at=utc_now())
    write_private(Path(args.output), json.dumps(plan, indent=2) + "\n")  # addresses: created 0600
    print(f"plan of {len(changes)} change(s) written to {args.output} (sha256 {plan['sha256']})")
    for change in changes:
        print(f"  {change_key(change)}")
    if report["held"]:
        print(f"  {len(report['held'])} creation(s) would be held (see connector report {report['run_id']})")
    lifecycle = report.get("lifecycle")
    if lifecycle and lifecycle.get("held"):
        print(
            f"  {len(lifecycle['held'])} lifecycle change(s) would be held ({lifecycle.get('limit_reached')}); "
            "they are not in the plan"
        )
    return EXIT_OK if report["status"] is RunStatus.OK else EXIT_PARTIAL


def cmd_apply(args: argparse.Namespace) -> int:
    from jobs.cycle import run_cycle

    try:
        planned = read_plan(json.loads(Path(args.plan).read_text(encoding="utf-8")))
    except (OSError, ValueError, PlanError) as exc:
        print(f"cannot use plan {args.plan}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    from jobs.registry import command_locks

    connector = connector_from_args(args)
    # One lock over the check and the apply: no scheduled cycle can move the state in between.
    with command_locks(connector, "apply"):
        fresh = changes_from_report(run_cycle(connector, clock=utc_now, dry_run=True).to_json())
        gone, new = differences(planned, fresh)
        if gone or new:
            print("refusing the plan: the state moved underneath it; make a new plan", file=sys.stderr)
            for key in gone:
                print(f"  no longer: {key}", file=sys.stderr)
            for key in new:
                print(f"  now also:  {key}", file=sys.stderr)
            return EXIT_FAILED
        report = run_cycle(connector, clock=utc_now, plan=frozenset(change_key(c) for c in planned)).to_json()
    print(render_text(report), end="")
    gone, new = differences(planned, changes_from_report(report))
    if gone:
        print(f"{len(gone)} planned change(s) were not made (see the report)", file=sys.stderr)
        return EXIT_PARTIAL
    return exit_code_of_run(report["status"])


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    probe = sub.add_parser("probe", parents=[common], help="ask a domain's downstream server if it accepts anything")
    probe.add_argument("domain")
    probe.add_argument("--server", help="HOST:PORT instead of safety.catch_all.probe.DOMAIN")
    probe.set_defaults(func=cmd_probe)

    pending = sub.add_parser(
        "pending",
        parents=[common],
        help="list creations held for review, with evidence, and lifecycle changes held by the limits",
    )
    pending.add_argument("--format", choices=["text", "json"], default="text")
    pending.set_defaults(func=cmd_pending)

    for name, func, text in (
        (
            "approve",
            cmd_approve,
            "create held users and make held lifecycle changes now (an address, or every one of a run)",
        ),
        (
            "deny",
            cmd_deny,
            "drop held creations (blocking those addresses) and held lifecycle changes (not proposed again)",
        ),
    ):
        command = sub.add_parser(name, parents=[common], help=text)
        command.add_argument("address", nargs="?")
        command.add_argument("--run", type=int, help="every creation and lifecycle change held by this run")
        command.set_defaults(func=func)

    block = sub.add_parser("block", parents=[common], help="never auto-create this address (e.g. a leaver)")
    block.add_argument("address")
    block.add_argument("--note", help="why (shown in explain and the report)")
    block.add_argument("--remove", action="store_true", help="lift the block")
    block.set_defaults(func=cmd_block)

    plan = sub.add_parser("plan", parents=[common], help="write the exact changes a sync would make, with a hash")
    plan.add_argument("-o", "--output", required=True, help="plan file to write")
    plan.set_defaults(func=cmd_plan)

    apply = sub.add_parser("apply", parents=[common], help="make exactly the changes of a plan, if still valid")
    apply.add_argument("plan", help="plan file written by connector plan")
    apply.set_defaults(func=cmd_apply)
