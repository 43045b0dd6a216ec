"""The ``connector`` command. Exit codes (docs/operations.md):

0 ok; 1 the run finished but some work was deferred or failed (see report);
2 configuration or usage error; 3 the run failed; 4 not found.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from connector import __version__
from connector.app import build_connector, utc_now
from connector.config import Settings, load_settings
from connector.errors import ConfigError, ConnectorError
from connector.reporting.text import render_text

EXIT_OK, EXIT_PARTIAL, EXIT_CONFIG, EXIT_FAILED, EXIT_NOT_FOUND = 0, 1, 2, 3, 4
log = logging.getLogger("connector")


def _settings(args: argparse.Namespace) -> Settings:
    path = args.config or os.environ.get("CONNECTOR_CONFIG")
    if not path:
        raise ConfigError([("", "no config file: pass -c FILE or set CONNECTOR_CONFIG")])
    return load_settings(Path(path))


def _connector(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    return build_connector(_settings(args), os.environ)


def cmd_config_check(args: argparse.Namespace) -> int:
    settings = _settings(args)
    warnings = []
    for source in settings.sources:
        if not source.path.exists():
            warnings.append(f"sources[{source.name}].path: {source.path} does not exist (yet)")
    if not settings.directory.path.exists():
        warnings.append(f"directory.path: {settings.directory.path} does not exist")
    try:
        settings.state.resolved_url(os.environ)
    except ConfigError as exc:
        for key, message in exc.problems:
            print(f"problem: {key}: {message}", file=sys.stderr)
        return EXIT_CONFIG
    for warning in warnings:
        print(f"warning: {warning}")
    print(f"config ok: {len(settings.sources)} source(s), {len(settings.domains)} managed domain(s)")
    return EXIT_OK


def cmd_config_show(args: argparse.Namespace) -> int:
    print(yaml.safe_dump(_settings(args).redacted(), sort_keys=False), end="")
    return EXIT_OK


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    build_connector(_settings(args), os.environ, migrate=True)
    print("state database is up to date")
    return EXIT_OK


def cmd_sync(args: argparse.Namespace) -> int:
    from jobs.cycle import run_cycle

    report = run_cycle(_connector(args), clock=utc_now, dry_run=args.dry_run).to_json()
    print(
        json.dumps(report, indent=2) if args.format == "json" else render_text(report),
        end="" if args.format == "text" else "\n",
    )
    return {"ok": EXIT_OK, "partial": EXIT_PARTIAL}.get(report["status"], EXIT_FAILED)


def cmd_report(args: argparse.Namespace) -> int:
    from connector.store.repository import get_run

    connector = _connector(args)
    run_id = None if args.run in (None, "latest") else int(args.run)
    with connector.sessions() as session:
        row = get_run(session, run_id)
    if row is None or row.report is None:
        print(f"no finished run {args.run or 'latest'}", file=sys.stderr)
        return EXIT_NOT_FOUND
    print(
        json.dumps(row.report, indent=2) if args.format == "json" else render_text(row.report),
        end="" if args.format == "text" else "\n",
    )
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    from connector.explain import explain

    print(explain(_connector(args), args.address, now=utc_now()), end="")
    return EXIT_OK


def cmd_users(args: argparse.Namespace) -> int:
    from connector.compliance.embedded import EmbeddedComplianceDirectory

    connector = _connector(args)
    if not isinstance(connector.target, EmbeddedComplianceDirectory):
        print("users lists the embedded compliance directory only", file=sys.stderr)
        return EXIT_CONFIG
    for org, users in sorted(connector.target.users_by_org().items()):
        print(f"{org} ({len(users)})")
        for primary, aliases in users:
            print(f"  {primary}" + (f"  aliases: {', '.join(aliases)}" if aliases else ""))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", help="config file (default: $CONNECTOR_CONFIG)")
    common.add_argument("-v", "--verbose", action="count", default=0, help="more log output on stderr (-vv: debug)")

    parser = argparse.ArgumentParser(prog="connector", description="Mail-flow user provisioning connector.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    sync = sub.add_parser(
        "sync", parents=[common], help="run one full cycle: ingest, decide, cross-check, sync, report"
    )
    sync.add_argument("--dry-run", action="store_true", help="decide and report, change nothing")
    sync.add_argument("--format", choices=["text", "json"], default="text")
    sync.set_defaults(func=cmd_sync)

    report = sub.add_parser("report", parents=[common], help="show a run report")
    report.add_argument("run", nargs="?", default="latest", help="'latest' (default) or a run id")
    report.add_argument("--format", choices=["text", "json"], default="text")
    report.set_defaults(func=cmd_report)

    explain = sub.add_parser("explain", parents=[common], help="explain the decision for one address")
    explain.add_argument("address")
    explain.set_defaults(func=cmd_explain)

    users = sub.add_parser("users", parents=[common], help="list users by org in the embedded compliance directory")
    users.set_defaults(func=cmd_users)

    config = sub.add_parser("config", help="check or show the configuration")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    config_sub.add_parser("check", parents=[common], help="validate; list every problem").set_defaults(
        func=cmd_config_check
    )
    config_sub.add_parser("show", parents=[common], help="print the effective config, secrets redacted").set_defaults(
        func=cmd_config_show
    )

    db = sub.add_parser("db", help="state database")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", parents=[common], help="apply migrations").set_defaults(func=cmd_db_upgrade)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = (
        [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
        if hasattr(args, "verbose")
        else logging.WARNING
    )
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print("configuration problems:", file=sys.stderr)
        for key, message in exc.problems:
            print(f"  {key or '(file)'}: {message}", file=sys.stderr)
        return EXIT_CONFIG
    except ConnectorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
