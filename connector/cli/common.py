"""What every command module shares: exit codes, loading settings, wiring."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from connector.app import Connector, build_connector
from connector.config import Settings, load_settings
from connector.errors import ConfigError

EXIT_OK, EXIT_PARTIAL, EXIT_CONFIG, EXIT_FAILED, EXIT_NOT_FOUND = 0, 1, 2, 3, 4


def load_args_settings(args: argparse.Namespace) -> Settings:
    """The settings named by ``-c`` or ``$CONNECTOR_CONFIG``."""
    path = args.config or os.environ.get("CONNECTOR_CONFIG")
    if not path:
        raise ConfigError([("", "no config file: pass -c FILE or set CONNECTOR_CONFIG")])
    return load_settings(Path(path))


def connector_from_args(args: argparse.Namespace) -> Connector:
    """Wired adapters for the command; the environment is read here, at the edge."""
    return build_connector(load_args_settings(args), os.environ)
