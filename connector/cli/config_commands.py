"""Commands about configuration and the state database."""

from __future__ import annotations

import argparse
import os
import sys

import yaml

from connector.app import build_connector, build_directory
from connector.cli.common import EXIT_CONFIG, EXIT_OK, load_args_settings
from connector.config import resolve_secret
from connector.config.directory import GraphDirectorySettings, LdapDirectorySettings, LdifDirectorySettings
from connector.config.target import check_target_secrets
from connector.errors import ConfigError


def cmd_config_check(args: argparse.Namespace) -> int:
    settings = load_args_settings(args)
    warnings = []
    for source in settings.sources:
        if not source.matching_files():
            warnings.append(f"sources[{source.name}]: no file matches {', '.join(source.patterns())} (yet)")
    directory = settings.directory
    if isinstance(directory, LdifDirectorySettings) and not directory.path.exists():
        warnings.append(f"directory.path: {directory.path} does not exist")
    ca_file = directory.ca_file if isinstance(directory, LdapDirectorySettings | GraphDirectorySettings) else None
    if ca_file is not None and not ca_file.exists():
        warnings.append(f"directory.ca_file: {ca_file} does not exist")
    try:
        settings.state.resolved_url(os.environ)
        build_directory(settings, os.environ)  # resolves the directory's secrets; connects to nothing
        check_target_secrets(settings.target, os.environ)
        digest = settings.reports.digest
        if digest is not None and digest.password is not None:
            resolve_secret(digest.password, os.environ, "reports.digest.password")
    except ConfigError as exc:
        for key, message in exc.problems:
            print(f"problem: {key}: {message}", file=sys.stderr)
        return EXIT_CONFIG
    for warning in warnings:
        print(f"warning: {warning}")
    print(f"config ok: {len(settings.sources)} source(s), {len(settings.domains)} managed domain(s)")
    return EXIT_OK


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
