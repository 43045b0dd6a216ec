"""What every command module shares: exit codes, loading settings, wiring."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from sqlalchemy.engine import make_url

from connector.app import Connector, build_connector
from connector.config import Settings, load_settings
from connector.domain.safe_text import printable as printable  # the one terminal rule, for every command
from connector.errors import ConfigError, ConnectorError

EXIT_OK, EXIT_PARTIAL, EXIT_CONFIG, EXIT_FAILED, EXIT_NOT_FOUND = 0, 1, 2, 3, 4


def load_args_settings(args: argparse.Namespace) -> Settings:
    """The settings named by ``-c`` or ``$CONNECTOR_CONFIG``."""
    path = args.config or os.environ.get("CONNECTOR_CONFIG")
    if not path:
        raise ConfigError([("", "no config file: pass -c FILE or set CONNECTOR_CONFIG")])
    return load_settings(Path(path))


class StateNotFound(ConnectorError):
    """A read-only command was pointed at a state database that does not exist."""


def connector_from_args(args: argparse.Namespace, *, read_only: bool = False) -> Connector:
    """Wired adapters for the command; the environment is read here, at the edge.

    ``read_only`` commands (report, explain, users) refuse to create an empty
    SQLite state database: a wrong config should say so, not show nothing.
    """
    settings = load_args_settings(args)
    url = make_url(settings.state.url)
    is_file = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
    if read_only and is_file and not Path(str(url.database)).exists():
        raise StateNotFound(f"no state database at {url.database}: run 'connector sync' first")
    return build_connector(settings, os.environ)
