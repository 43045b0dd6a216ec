"""The Dockerfile: lint-clean, non-root, and its entrypoint and health check commands work as written.

No Docker engine runs here, so the commands the image runs are run directly,
with the image's environment and a config that keeps every write in the data volume.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import ROOT

DOCKERFILE = ROOT / "Dockerfile"
BIN = Path(sys.executable).parent


def instructions() -> dict[str, str]:
    """Last value of each instruction (line continuations joined)."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    found: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            found[keyword.upper()] = rest.strip()
    return found


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run([BIN / "hadolint", DOCKERFILE], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_shape() -> None:
    found = instructions()
    assert found["FROM"].startswith("python:3.11-slim")
    assert found["USER"].split(":")[0] not in ("root", "0")
    assert json.loads(found["ENTRYPOINT"]) == ["connector", "run"]
    assert found["VOLUME"] == '["/var/lib/connector"]'
    assert "CONNECTOR_CONFIG=/etc/connector/connector.yaml" in found["ENV"]


def test_entrypoint_and_healthcheck_commands_work_and_write_only_to_the_data_volume(tmp_path: Path) -> None:
    found = instructions()
    config_dir, data_dir = tmp_path / "etc-connector", tmp_path / "var-lib-connector"
    shutil.copytree(ROOT / "config" / "demo", config_dir / "demo")
    config = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    config["state"] = {"url": f"sqlite:///{data_dir / 'state.sqlite'}"}
    (config_dir / "connector.yaml").write_text(yaml.safe_dump(config))
    data_dir.mkdir()
    before = sorted(p.relative_to(config_dir) for p in config_dir.rglob("*"))
    # The image's environment, with the config path of this test in place of /etc/connector.
    env = {"PATH": f"{BIN}:{os.environ['PATH']}", "HOME": str(data_dir)}
    for item in re.findall(r"(\w+)=(\S+)", found["ENV"]):
        env[item[0]] = item[1].replace("/etc/connector", str(config_dir))
    entrypoint = json.loads(found["ENTRYPOINT"])
    health = json.loads(found["HEALTHCHECK"].split(" CMD ", 1)[1])

    def run(command: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, capture_output=True, text=True, env=env, cwd=data_dir, check=False, timeout=60)

    assert run(health).returncode == 4  # before the first start: no state yet (and none created)
    once = run([*entrypoint, "--once"])  # the CronJob form: `docker run IMAGE --once`
    assert once.returncode == 0, once.stderr
    assert "job decide: ok" in once.stdout
    checked = run(health)
    assert (checked.returncode, checked.stdout) == (0, "healthy\n")
    assert sorted(p.relative_to(config_dir) for p in config_dir.rglob("*")) == before  # the config mount: untouched
    assert {p.name for p in data_dir.iterdir()} >= {"state.sqlite", "state.sqlite.lock"}
