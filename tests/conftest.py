"""Shared fixtures: time helpers and a copy of the demo in a temp dir; temp files in RAM."""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

pytest_plugins = ["tests.postgres"]  # the ``postgres`` server and the ``state_url`` fixture per backend

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
RAM_TEMP = Path("/dev/shm")
RAM_TEMP_NEEDED = 2 * 1024**3  # bytes free on it; a whole run uses a few hundred MB


def pytest_configure(config: pytest.Config) -> None:
    """Temp files in RAM (tmpfs) when the machine has room and ``TMPDIR`` is not set.

    pytest's ``tmp_path``, the PostgreSQL clusters (tests/postgres.py) and every server's work dir
    go to ``tempfile.gettempdir()``. On a disk, each ``CREATE DATABASE`` and SQLite commit waits for
    it (about 0.6 s against 0.04 s per database measured on this machine under load); in RAM they do
    not. What is tested does not change: a SIGKILLed process loses the same writes on either.
    Set ``TMPDIR`` to choose the place yourself (``TMPDIR=/tmp ./dev test``)."""
    if "TMPDIR" in os.environ or not RAM_TEMP.is_dir() or not os.access(RAM_TEMP, os.W_OK | os.X_OK):
        return
    if shutil.disk_usage(RAM_TEMP).free < RAM_TEMP_NEEDED:
        return
    os.environ["TMPDIR"] = str(RAM_TEMP)  # child processes and pytest-xdist's workers inherit it
    tempfile.tempdir = None  # gettempdir() looks again


def pytest_report_header(config: pytest.Config) -> str:
    return f"temp files: {tempfile.gettempdir()}"


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
