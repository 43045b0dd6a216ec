"""Test only: run the ``connector`` CLI in a child process and SIGKILL it at a chosen point.

No test hook lives in production code: the child installs its hooks from
outside (a SQLAlchemy event on every engine, a wrapper around requests' HTTP
adapter, a wrapper around one named function), then calls ``connector.cli.main``.

A ``KillPoint(mark, event, count)`` says where the child dies:

- ``mark``: ``"module:attribute"`` of a function, patched where its caller looks it
  up (``jobs.cycle:ingest``, ``jobs.cycle:SafetyStage.prepare``), or ``""``. Counting
  starts when the mark is first entered (at once without a mark).
- ``event``: ``sql``: just before the ``count``-th statement sent to the state database
  (so the transaction in progress is lost); ``http``: just after the ``count``-th HTTP
  answer came back (the server did the work, the connector never hears of it);
  ``call``: on the ``count``-th entry into the mark itself.
- ``match``: only events whose text contains it count (``"INSERT INTO candidates"``).

Importing the connector takes about a second, more than most runs. So
``Forker`` starts one process that imports everything once, and forks one
child per run (a real process, killed with a real SIGKILL; the forker is
single-threaded, so forking it is safe). Protocol: one JSON request per line
on stdin, one JSON answer per line on stdout.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class KillPoint:
    """Where a child run dies (see the module docstring)."""

    mark: str
    event: str  # sql | http | call
    count: int
    match: str = ""

    def __str__(self) -> str:
        matching = f"[{self.match}]" if self.match else ""
        return f"{self.mark or 'start'}+{self.event}{matching}#{self.count}"


@dataclass(frozen=True)
class RunResult:
    """How a child run ended: its exit code (``-9`` when killed), its output and event trace."""

    returncode: int
    stdout: str
    stderr: str
    trace: list[str]
    cpu_seconds: float  # user + system time of the child

    @property
    def killed(self) -> bool:
        return self.returncode == -signal.SIGKILL


class Forker:
    """One pre-imported process that forks a child per ``run``."""

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        self._runs = 0
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.killer"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
            text=True,
        )

    def run(
        self,
        argv: Sequence[str],
        *,
        kill: KillPoint | None = None,
        env: Mapping[str, str] | None = None,
        trace: bool = False,
        watch: Sequence[str] = (),
    ) -> RunResult:
        """Run ``connector ARGV`` in a fresh child; with ``kill``, SIGKILL it there.

        ``trace``: record every event in ``RunResult.trace``, and each entry into the ``watch`` marks.
        """
        self._runs += 1
        base = self._workdir / f"run-{self._runs}"
        request = {
            "argv": list(argv),
            "kill": asdict(kill) if kill else None,
            "env": dict(env or {}),
            "stdout": f"{base}.out",
            "stderr": f"{base}.err",
            "trace": f"{base}.trace" if trace else None,
            "watch": list(watch),
        }
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        answer = json.loads(self._process.stdout.readline())
        trace_path = Path(f"{base}.trace")
        return RunResult(
            answer["returncode"],
            Path(f"{base}.out").read_text(),
            Path(f"{base}.err").read_text(),
            trace_path.read_text().splitlines() if trace and trace_path.exists() else [],
            answer["cpu_seconds"],
        )

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait(10)
        if self._process.stdout is not None:
            self._process.stdout.close()


# -- in the child -------------------------------------------------------------------------------


class _Hooks:
    """Counts events after the mark; SIGKILLs this process at the chosen one; optionally traces."""

    def __init__(self, kill: KillPoint | None, trace: IO[str] | None) -> None:
        self.kill = kill
        self.armed = kill is None or kill.mark == ""
        self.seen = 0
        self.trace = trace
        self.lock = threading.Lock()

    def event(self, kind: str, what: str) -> None:
        with self.lock:
            if self.trace is not None:
                self.trace.write(f"{kind} {what} @{time.monotonic():.3f}\n")
                self.trace.flush()
            if self.kill is None or not self.armed or kind != self.kill.event or self.kill.match not in what:
                return
            self.seen += 1
            if self.seen >= self.kill.count:
                os.kill(os.getpid(), signal.SIGKILL)

    def enter_mark(self) -> None:
        self.armed = True
        self.event("call", self.kill.mark if self.kill else "")


def _patch(target: str, wrap: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    module_name, _, path = target.partition(":")
    owner: Any = importlib.import_module(module_name)
    *parents, name = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    setattr(owner, name, wrap(getattr(owner, name)))


def _install(hooks: _Hooks) -> None:
    import requests.adapters
    from sqlalchemy import Engine, event

    def before_cursor_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        hooks.event("sql", " ".join(statement.split())[:100])

    event.listen(Engine, "before_cursor_execute", before_cursor_execute)

    original_send = requests.adapters.HTTPAdapter.send

    def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        response = original_send(self, request, *args, **kwargs)
        hooks.event("http", f"{request.method} {request.path_url[:80]} {response.status_code}")
        return response

    requests.adapters.HTTPAdapter.send = send  # type: ignore[method-assign]

    if hooks.kill is not None and hooks.kill.mark:

        def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(original)
            def marked(*args: Any, **kwargs: Any) -> Any:
                hooks.enter_mark()
                return original(*args, **kwargs)

            return marked

        _patch(hooks.kill.mark, wrap)


def _watch(hooks: _Hooks, marks: Sequence[str]) -> None:
    """Trace each entry into ``marks`` (to find kill points; never kills)."""
    for mark in marks:

        def wrap(original: Callable[..., Any], mark: str = mark) -> Callable[..., Any]:
            @functools.wraps(original)
            def watched(*args: Any, **kwargs: Any) -> Any:
                if hooks.trace is not None:
                    with hooks.lock:
                        hooks.trace.write(f"mark {mark} @{time.monotonic():.3f}\n")
                return original(*args, **kwargs)

            return watched

        _patch(mark, wrap)


def _child(request: dict[str, Any]) -> None:
    """In the forked child: redirect output, install the hooks, run the CLI, exit with its code."""
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
        os.close(target)
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - the process ends with os._exit
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    os.environ.update(request["env"])
    code = 3
    try:
        kill = KillPoint(**request["kill"]) if request["kill"] else None
        trace = open(request["trace"], "w") if request["trace"] else None  # noqa: SIM115
        hooks = _Hooks(kill, trace)
        _install(hooks)
        _watch(hooks, request.get("watch") or ())
        from connector.cli import main

        code = main(request["argv"])
    except BaseException as exc:
        print(f"child: {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    """The forker: import once, then one child per request line."""
    import psycopg  # noqa: F401
    import requests  # noqa: F401

    import connector.cli

    connector.cli.build_parser()  # every command module: everything a run needs, imported before forking
    import jobs.cycle
    import jobs.registry
    import jobs.scheduler  # noqa: F401
    from connector.compliance import scim_mapping
    from connector.directory import ldap  # noqa: F401

    # pydantic builds the generic SCIM PATCH models on first use (half a second): once, here.
    scim_mapping.add_members_patch(["warm-up"])
    scim_mapping.add_emails_patch(["warm-up@example.org"])

    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request)
        _, status, usage = os.wait4(pid, 0)
        answer = {"returncode": os.waitstatus_to_exitcode(status), "cpu_seconds": usage.ru_utime + usage.ru_stime}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    serve()
