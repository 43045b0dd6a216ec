"""Commands about configuration and the state database."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from zoneinfo import ZoneInfo

import yaml

from connector.app import build_connector, build_directory, build_notifiers
from connector.cli.common import EXIT_OK, load_args_settings
from connector.config import Settings, resolve_secret
from connector.config.directory import GraphDirectorySettings, LdapDirectorySettings, LdifDirectorySettings
from connector.config.messages import did_you_mean, key_path
from connector.config.target import check_target_secrets
from connector.directory.base import CountableDirectory
from connector.directory.presets import preset_check_of
from connector.errors import ConfigError, FatalError, InvariantError, RetriableError


def cmd_config_check(args: argparse.Namespace) -> int:
    """Everything that can be checked without connecting anywhere; problems exit 2, warnings do not."""
    settings = load_args_settings(args)
    warnings = []
    for source in settings.sources:
        if not source.matching_files():
            warnings.append(f"sources[{source.name}]: no file matches {', '.join(source.patterns())} (yet)")
    directory = settings.directory
    ca_file = directory.ca_file if isinstance(directory, LdapDirectorySettings | GraphDirectorySettings) else None
    if ca_file is not None and not ca_file.exists():
        warnings.append(f"directory.ca_file: {ca_file} does not exist")
    problems = _secret_problems(settings) + _schedule_problems(settings)
    ldif_problems, ldif_warnings = _ldif_findings(settings)
    problems += ldif_problems
    warnings += ldif_warnings
    for warning in warnings:
        print(f"warning: {warning}")
    if problems:
        raise ConfigError(problems)  # printed like every other configuration problem (cli.main)
    print(f"config ok: {len(settings.sources)} source(s), {len(settings.domains)} managed domain(s)")
    return EXIT_OK


def _secret_problems(settings: Settings) -> list[tuple[str, str]]:
    """Every secret that cannot be resolved (each one, not only the first)."""
    digest = settings.reports.digest
    checks: list[Callable[[], object]] = [
        lambda: settings.state.resolved_url(os.environ),
        lambda: build_directory(settings, os.environ),  # resolves the directory's secrets; connects to nothing
        lambda: check_target_secrets(settings.target, os.environ),
        lambda: build_notifiers(settings, os.environ, None),  # the webhook URL: resolved and checked, not used
    ]
    if digest is not None and digest.password is not None:
        password = digest.password
        checks.append(lambda: resolve_secret(password, os.environ, "reports.digest.password"))
    problems: list[tuple[str, str]] = []
    for check in checks:
        try:
            check()
        except ConfigError as exc:
            problems += exc.problems
    return problems


def _schedule_problems(settings: Settings) -> list[tuple[str, str]]:
    """Unknown job names and cron strings the scheduler would refuse at start-up."""
    from jobs.registry import JOBS
    from jobs.scheduler import trigger_for

    zone = ZoneInfo(settings.scheduler.timezone)
    problems: list[tuple[str, str]] = []
    for name, schedule in settings.scheduler.jobs.items():
        key = key_path(("scheduler", "jobs", name))
        if name not in JOBS:
            problems.append((key, f"no such job{did_you_mean(name, JOBS)}; jobs: {', '.join(JOBS)}"))
        if schedule.cron is not None:
            try:
                trigger_for(schedule, zone)
            except ConfigError as exc:
                problems += [(f"{key}.cron", message) for _, message in exc.problems]
    return problems


def _ldif_findings(settings: Settings) -> tuple[list[tuple[str, str]], list[str]]:
    """An LDIF directory is read now: a missing or broken file is a problem, a preset that does not fit a warning."""
    directory = settings.directory
    if not isinstance(directory, LdifDirectorySettings):
        return [], []  # LDAP and Graph are checked by `connector directory check`, which connects
    if not directory.path.is_file():
        return [("directory.path", f"LDIF file {directory.path} does not exist")], []
    ldif = build_directory(settings, os.environ)
    if not isinstance(ldif, CountableDirectory):
        raise InvariantError(f"{ldif.describe()} cannot count its entries")
    try:
        ldif.count_entries()  # reads the file, as the first run would
    except (RetriableError, FatalError) as exc:
        return [("directory.path", str(exc))], []
    check = preset_check_of(ldif)
    warning = check.warning() if check is not None else None
    return [], [warning] if warning else []


def cmd_config_show(args: argparse.Namespace) -> int:
    print(yaml.safe_dump(load_args_settings(args).redacted(), sort_keys=False), end="")
    return EXIT_OK


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    build_connector(load_args_settings(args), os.environ, migrate=True)
    print("state database is up to date")
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
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
