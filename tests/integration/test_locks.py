"""Job locks on each backend: a second holder is refused (or waits), a released lock is free again."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from connector.store.database import make_engine
from connector.store.locks import LockBusy, lock_key, make_job_locks


@pytest.fixture
def engines(state_url: str) -> Iterator[tuple[Engine, Engine]]:
    """Two engines on one database: two processes' worth of connections."""
    first, second = make_engine(state_url), make_engine(state_url)
    yield first, second
    first.dispose()
    second.dispose()


def test_a_held_lock_refuses_another_holder_until_released(engines: tuple[Engine, Engine]) -> None:
    mine, theirs = (make_job_locks(e) for e in engines)
    with mine.hold(["cycle"]):
        with pytest.raises(LockBusy), theirs.hold(["cycle"]):
            pass
        started = time.monotonic()
        with pytest.raises(LockBusy), theirs.hold(["cycle", "ingest"], wait_seconds=0.5):
            pass
        assert time.monotonic() - started >= 0.5
    with theirs.hold(["cycle"]):
        pass  # free again


def test_a_waiting_holder_gets_the_lock_when_it_is_released(engines: tuple[Engine, Engine]) -> None:
    mine, theirs = (make_job_locks(e) for e in engines)
    release = threading.Event()

    def hold_briefly() -> None:
        with mine.hold(["cycle"]):
            release.wait(5)

    thread = threading.Thread(target=hold_briefly)
    thread.start()
    time.sleep(0.2)
    threading.Timer(0.3, release.set).start()
    with theirs.hold(["cycle"], wait_seconds=10):
        assert release.is_set()
    thread.join()


def test_jobs_of_one_process_queue_instead_of_skipping(engines: tuple[Engine, Engine]) -> None:
    locks = make_job_locks(engines[0])
    order: list[str] = []

    def second() -> None:
        with locks.hold(["cycle"]):
            order.append("second")

    with locks.hold(["cycle"]):
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.2)
        order.append("first")
    thread.join(5)
    assert order == ["first", "second"]


def test_lock_keys_are_stable_and_distinct() -> None:
    assert lock_key("cycle") == lock_key("cycle") != lock_key("ingest")
    assert -(2**63) <= lock_key("cycle") < 2**63
