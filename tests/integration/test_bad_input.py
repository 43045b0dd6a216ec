"""Bad input never crashes a run: it is counted per source, with a few samples, and the run goes on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connector.cli import main
from connector.sources.formats import log_source
from tests.conftest import DATA

SAMPLE = (DATA / "postfix" / "postlogd-maillog_file.log").read_bytes()
GOOD_EVENTS = sum(
    len(b.events) for b in log_source("postfix", "gw", DATA / "postfix" / "postlogd-maillog_file.log").read(None)
)


def config(tmp_path: Path, pattern: str) -> Path:
    (tmp_path / "dir.ldif").write_text("")
    path = tmp_path / "connector.yaml"
    path.write_text(
        f"state: {{url: 'sqlite:///{tmp_path}/state.sqlite'}}\n"
        f"sources: [{{name: gw, paths: ['{pattern}'], batch_lines: 10}}]\n"
        "domains: {example.com: {org: Example, method: smartcreate}}\n"
        "directory: {type: ldif, path: dir.ldif}\n"
    )
    return path


def test_garbage_of_every_kind_is_counted_and_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = SAMPLE.splitlines(keepends=True)
    bad = [
        b"\x00\x01\x02\xff\xfe binary garbage\n",
        b"Nov 27 08:59:25 mx1 postfix/relay/smtp[5348]: 784D0160034: to=<cut@example.com>, rel\n",  # truncated
        b"Nov 27 08:59:25 mx1 postfix/smtp[1]: " + b"x" * 70_000 + b"\n",  # over 64 KiB
        b"Nov 27 08:59:25 mx1 postfix/smtp[1]: 784D0160034: to=<\xc3\x28@example.com>, relay=x, delay=1, "
        b"delays=0/0/0/1, dsn=5.1.1, status=bogus (x)\n",  # invalid UTF-8, unknown status
        b"Foo 99 99:99:99 mx1 postfix/qmgr[1]: ABCDEF: removed\n",
    ]
    data = b"".join(lines[:10]) + b"".join(bad) + b"".join(lines[10:])
    (tmp_path / "mail.log").write_bytes(data)
    cfg = config(tmp_path, f"{tmp_path}/mail.log*")
    assert main(["ingest", "-c", str(cfg)]) == 0
    out = capsys.readouterr().out
    # the binary garbage names no Postfix program: foreign, not malformed
    assert f"{len(lines) + len(bad):,} lines, {GOOD_EVENTS} events, 4 bad lines" in out
    assert "line over 64 KiB" in out and "bad month" in out
    # Sync's report shows the same samples.
    damaged = b"Nov 27 08:59:2\xff mx1 postfix/qmgr[1]: ABCDEF: removed\n"
    (tmp_path / "mail.log").write_bytes(data + b"\xff\xfe\n" + damaged)
    assert main(["sync", "-c", str(cfg), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    [source] = report["sources"]
    assert source["bad_lines"] == 1 and source["bad_line_examples"][0]["error"].startswith("bad time")


def test_a_file_that_shrinks_and_a_missing_file(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    log.write_bytes(SAMPLE)
    source = log_source("postfix", "gw", log)
    checkpoint = list(source.read(None))[-1].checkpoint
    log.write_bytes(SAMPLE[: len(SAMPLE) // 3])  # shorter, same start: rewritten in place
    batches = list(source.read(checkpoint))
    assert "truncated" in (batches[0].stats.restarted or "")
    log.unlink()
    batches = list(source.read(batches[-1].checkpoint))
    assert batches[-1].events == [] and "no such file" in (batches[0].stats.error or "")
    assert batches[-1].checkpoint.files  # the positions are kept: the file may come back


def test_a_missing_file_is_an_error_that_does_not_crash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = config(tmp_path, f"{tmp_path}/absent.log")
    assert main(["ingest", "-c", str(cfg)]) == 1  # partial: the source could not be read
    assert "absent.log: no such file" in capsys.readouterr().err


def test_a_glob_with_no_match_yet_is_only_a_note(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = config(tmp_path, f"{tmp_path}/mail.log*")
    assert main(["ingest", "-c", str(cfg)]) == 0
    assert "no file matches" in capsys.readouterr().out


def test_a_damaged_gz_rotation_is_noted_and_the_rest_read(tmp_path: Path) -> None:
    import gzip

    packed = gzip.compress(SAMPLE)
    (tmp_path / "mail.log.1.gz").write_bytes(packed[: len(packed) // 2])
    (tmp_path / "mail.log").write_bytes(SAMPLE)
    batches = list(log_source("postfix", "gw", f"{tmp_path}/mail.log*").read(None))
    notes = " ".join(b.stats.restarted or "" for b in batches)
    assert "read failed" in notes
    assert sum(len(b.events) for b in batches) >= GOOD_EVENTS
