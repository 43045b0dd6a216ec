"""What every command module shares: exit codes, loading settings, wiring."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from connector.app import Connector, build_connector
from connector.config import Settings, load_settings
from connector.domain.safe_text import printable as printable  # the one terminal rule, for every command
from connector.errors import ConfigError
from connector.store.database import StateNotFound as StateNotFound  # exit 4: "no state yet"

EXIT_OK, EXIT_PARTIAL, EXIT_CONFIG, EXIT_FAILED, EXIT_NOT_FOUND = 0, 1, 2, 3, 4


def load_args_settings(args: argparse.Namespace) -> Settings:
    """The settings named by ``-c`` or ``$CONNECTOR_CONFIG``."""
    path = args.config or os.environ.get("CONNECTOR_CONFIG")
    if not path:
        raise ConfigError([("", "no config file: pass -c FILE or set CONNECTOR_CONFIG")])
    return load_settings(Path(path))


def not_an_address(exc: Exception) -> str:
    """One "not an address: ..." message, whether or not the error's own text says so already."""
    text = printable(str(exc))
    return text if text.startswith("not an address") else f"not an address: {text}"


def connector_from_args(args: argparse.Namespace, *, read_only: bool = False) -> Connector:
    """Wired adapters for the command; the environment is read here, at the edge.

    ``read_only`` commands (health, jobs, report, explain, users, pending, approve,
    deny ...) never create a state database nor migrate one: before the first run
    they say "no state yet" (``StateNotFound``, exit 4); a wrong config says so.
    """
    return build_connector(load_args_settings(args), os.environ, read_only=read_only)
