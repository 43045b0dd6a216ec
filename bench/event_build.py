#!/usr/bin/env python3
"""Micro-benchmark: the cost of building one ``DeliveryEvent``, three ways.

    .venv/bin/python bench/event_build.py

``DeliveryEvent(...)`` with keyword arguments (as most decoders call it), with positional
arguments, and ``delivery_event(...)`` (the hot decoders' constructor). Prints the best of
30 interleaved rounds in nanoseconds per event. Not a test: figures depend on the machine.
"""

from __future__ import annotations

import timeit
from datetime import UTC, datetime

from connector.domain.events import DeliveryEvent, DeliveryStatus, delivery_event

AT = datetime(2024, 3, 4, tzinfo=UTC)
SENT = DeliveryStatus.SENT


def keywords() -> DeliveryEvent:
    return DeliveryEvent(
        at=AT,
        host="mx1",
        queue_id="4Bq3kL1abc",
        message_id="m.1@partner.test",
        sender="alice@partner.test",
        recipient="bob@example.test",
        orig_recipient=None,
        relay="exchange.example.test[10.0.0.5]:25",
        dsn="2.0.0",
        status=SENT,
        reply="250 2.0.0 Ok",
        rcpt_stage=False,
        source="gateway",
        ndr_for=None,
        ndr_recipients=(),
        probe=False,
    )


def positional() -> DeliveryEvent:
    return DeliveryEvent(
        AT, "mx1", "4Bq3kL1abc", "m.1@partner.test", "alice@partner.test", "bob@example.test", None,
        "exchange.example.test[10.0.0.5]:25", "2.0.0", SENT, "250 2.0.0 Ok", False, "gateway", "", None, (), False,
    )  # fmt: skip


def fast() -> DeliveryEvent:
    return delivery_event(
        AT, "mx1", "4Bq3kL1abc", "m.1@partner.test", "alice@partner.test", "bob@example.test", None,
        "exchange.example.test[10.0.0.5]:25", "2.0.0", SENT, "250 2.0.0 Ok", False, "gateway", None, (), False,
    )  # fmt: skip


def main() -> None:
    if not keywords() == positional() == fast():
        raise SystemExit("the three ways build different events")
    ways = {"DeliveryEvent(keywords)": keywords, "DeliveryEvent(positional)": positional, "delivery_event": fast}
    best = dict.fromkeys(ways, float("inf"))
    number = 20_000
    for _ in range(30):  # interleaved: a busy machine slows all alike
        for name, build in ways.items():
            best[name] = min(best[name], timeit.timeit(build, number=number) / number * 1e9)
    for name, ns in best.items():
        print(f"{name:<28}{ns:>8.0f} ns/event")


if __name__ == "__main__":
    main()
