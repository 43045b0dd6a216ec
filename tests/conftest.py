"""Shared fixtures: time helpers and a copy of the demo in a temp dir."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

pytest_plugins = ["tests.postgres"]  # the ``postgres`` server and the ``state_url`` fixture per backend

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


def utc(text: str) -> datetime:
    """``utc("2026-11-02T10:00:00")`` -> aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def demo_config(tmp_path: Path) -> Path:
    """config/demo.yaml and its data copied to a temp dir (state lands there too)."""
    config_dir = tmp_path / "config"
    shutil.copytree(ROOT / "config" / "demo", config_dir / "demo")
    shutil.copy(ROOT / "config" / "demo.yaml", config_dir / "demo.yaml")
    return config_dir / "demo.yaml"
