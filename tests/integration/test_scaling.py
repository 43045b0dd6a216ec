"""Two gateways, each with an ingest-only instance, feed one state database; a third instance decides."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from connector.cli import main
from tests.service import State, service_config, start

QUEUE_ID = re.compile(r"\]: ([0-9A-F]{8,}):")


def split_log(lines: list[str]) -> int:
    """The line nearest the middle where no message's queue id is on both sides."""
    middle = len(lines) // 2
    for offset in range(len(lines) // 2):
        for cut in (middle - offset, middle + offset):
            before = {m.group(1) for line in lines[:cut] if (m := QUEUE_ID.search(line))}
            after = {m.group(1) for line in lines[cut:] if (m := QUEUE_ID.search(line))}
            if not before & after:
                return cut
    raise AssertionError("no clean cut")


def test_ingest_only_instances_per_gateway_and_one_decider(
    demo_config: Path, state_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = demo_config.parent / "demo"
    lines = (demo / "logs" / "mail.log").read_text().splitlines(keepends=True)
    cut = split_log(lines)
    assert 100 < cut < len(lines) - 100
    (demo / "logs" / "mx1.log").write_text("".join(lines[:cut]))
    (demo / "logs" / "mx2.log").write_text("".join(lines[cut:]))

    def instance(name: str, roles: list[str], sources: list[dict[str, str]]) -> Path:
        config = demo_config.parent / f"{name}.yaml"
        config.write_text(demo_config.read_text())
        monitoring = {"instance": name, "log_format": "json"}
        return service_config(config, state_url, roles=roles, sources=sources, monitoring=monitoring)

    mx1 = instance("mx1", ["ingest"], [{"name": "mx1", "path": "demo/logs/mx1.log"}])
    mx2 = instance("mx2", ["ingest"], [{"name": "mx2", "path": "demo/logs/mx2.log"}])
    # The decider lists a source it never reads: decide-only instances ingest nothing.
    decider = instance("decider", ["decide"], [{"name": "unused", "path": "demo/logs/none.log"}])
    assert main(["db", "upgrade", "-c", str(decider)]) == 0

    gateways = [start("run", "--once", "--wait", "60", "-c", str(c)) for c in (mx1, mx2)]
    results = [(*p.communicate(timeout=60), p.returncode) for p in gateways]
    assert [(code, out.strip()) for out, _err, code in results] == [(0, "job ingest: ok")] * 2, results
    logged = [json.loads(line) for _out, err, _code in results for line in err.splitlines()]
    assert {"time", "level", "logger", "message"} <= set(logged[0])
    assert any(entry["message"] == "job ingest started" for entry in logged)

    capsys.readouterr()
    assert main(["run", "--once", "--format", "none", "-c", str(decider)]) == 0
    assert "job decide: ok" in capsys.readouterr().out
    state = State(state_url)
    [run] = state.runs()
    state.close()
    assert run.report is not None
    assert run.report["sources"] == []  # the decider read no log
    # gina and hank appear only in mx2's log; erin's three messages are split 2 + 1 between the gateways.
    created = {c["address"] for c in run.report["created"]}
    assert created == {
        "alice@acme.com",
        "bob@acme.com",
        "erin@acme.com",
        "frank@acme.com",
        "gina@globex.com",
        "hank@globex.com",
    }
    assert main(["health", "-c", str(mx1)]) == 0 and main(["health", "-c", str(decider)]) == 0
