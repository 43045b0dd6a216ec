"""Create N users at a local scim2-server: a sequential baseline vs. the connector's way.

    .venv/bin/python -m bench.scim [--users 1000]

Baselines: one plain POST per user, one after the other, a new connection each
time (what a naive client does); and the connector's own work (lookup, create,
membership) done one user after the other with ``create_user``. Connector: ``ScimComplianceDirectory.create_users``
(one pooled session, batched lookups, Bulk when offered, else bounded
concurrency), which also looks every user up first and adds it to its org.
Each mode gets a fresh server in its own process, so client and server do not
share a GIL. Prints users/s and the ratio to the baseline of this same run.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from connector.app import utc_now
from connector.compliance.base import NewUser
from connector.compliance.scim import ScimComplianceDirectory
from connector.compliance.scim_http import ScimHttp
from connector.compliance.scim_mapping import user_payload
from connector.compliance.target_state import KnownStore, TargetHealth
from connector.config.target import ScimTargetSettings
from connector.store.database import make_engine, make_sessionmaker, upgrade
from tests.scim_server import TOKEN

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def server_process(latency_ms: float) -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.scim_server", str(latency_ms)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}/v2"
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=30)


def users(n: int) -> list[NewUser]:
    return [NewUser(f"user{i:05d}@acme.com", "Acme Corp" if i % 2 else "Globex") for i in range(n)]


def connector_way(
    url: str, batch: list[NewUser], use_bulk: bool = True, one_by_one: bool = False
) -> Callable[[], None]:
    """Wire the target (state database included) untimed; the returned call is what is timed.

    ``one_by_one``: the same work (lookup, create, membership) one user after the other.
    """
    settings = ScimTargetSettings.model_validate(
        {"type": "scim", "url": url, "bearer_token": {"env": "X"}, "use_bulk": use_bulk, "requests_per_second": 1000}
    )
    tmp = tempfile.mkdtemp()
    engine = make_engine(f"sqlite:///{tmp}/state.sqlite")
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    health = TargetHealth(sessions, url, settings.quarantine, utc_now)
    http = ScimHttp(url, bearer_token=TOKEN, health=health, pool_size=settings.concurrency, retry=settings.retry)
    target = ScimComplianceDirectory(http, settings, KnownStore(sessions, url), health, utc_now, logging.getLogger("b"))

    def run() -> None:
        if one_by_one:
            assert all(target.create_user(user) for user in batch)
            return
        results = target.create_users(batch)
        assert results == [True] * len(batch), [r for r in results if r is not True][:3]

    return run


def sequential(url: str, batch: list[NewUser]) -> Callable[[], None]:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/scim+json"}

    def run() -> None:
        for user in batch:
            response = requests.post(f"{url}/Users", json=user_payload(user), headers=headers, timeout=30)
            assert response.status_code == 201, response.text

    return run


def measure(
    label: str,
    prepare: Callable[[str, list[NewUser]], Callable[[], None]],
    n: int,
    latency_ms: float = 0.0,
    url: str | None = None,
    repeat: int = 1,
) -> float:
    def run(target_url: str) -> float:
        action = prepare(target_url, users(n))
        started = time.perf_counter()
        action()
        return time.perf_counter() - started

    seconds = float("inf")
    for _ in range(repeat):  # best of ``repeat``: the machine may be busy with other work
        if url is not None:
            seconds = min(seconds, run(url))
        else:
            with server_process(latency_ms) as fresh:
                seconds = min(seconds, run(fresh))
    rate = n / seconds
    print(f"{label:<44} {n:6d} users {seconds:8.2f} s {rate:9.1f} users/s", flush=True)
    return rate


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=1, help="best of this many runs per mode (fresh server each)")
    parser.add_argument(
        "--same-work",
        action="store_true",
        help="also time create_user one by one (slow: scim2-server evaluates each filter over every user)",
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        action="append",
        help="added to every answer, as from a distant server (repeatable; default: 0 and 10)",
    )
    args = parser.parse_args(argv)
    figures: dict[str, float] = {}
    for latency in args.latency_ms or [0.0, 10.0]:
        print(f"-- {args.users} users, {latency:g} ms added latency per answer")
        base = measure("sequential POST, new connection each", sequential, args.users, latency, repeat=args.repeat)
        same_work = (
            measure(
                "sequential, same work (create_user each)",
                lambda u, b: connector_way(u, b, one_by_one=True),
                args.users,
                latency,
                repeat=args.repeat,
            )
            if args.same_work
            else 0.0
        )
        bulk = measure(
            "connector: lookups + Bulk + org membership", connector_way, args.users, latency, repeat=args.repeat
        )
        pooled = measure(
            "connector without Bulk: 4 threads, pooled",
            lambda u, b: connector_way(u, b, use_bulk=False),
            args.users,
            latency,
            repeat=args.repeat,
        )
        print(f"ratio connector (Bulk) / sequential POST:        {bulk / base:6.2f}x (target >= 3x)")
        print(f"ratio connector (no Bulk) / sequential POST:     {pooled / base:6.2f}x")
        if same_work:
            print(f"ratio connector (Bulk) / same work sequentially: {bulk / same_work:6.2f}x")
        figures.update(
            {
                f"sequential@{latency:g}": base,
                f"same_work@{latency:g}": same_work,
                f"bulk@{latency:g}": bulk,
                f"pooled@{latency:g}": pooled,
            }
        )
    return figures


if __name__ == "__main__":
    main()
