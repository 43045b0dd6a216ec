"""Benchmark: directory cross-check speed against a real slapd, three ways in one run.

    .venv/bin/python -m bench.directory                      # 100,000 entries, 10,000 candidates
    .venv/bin/python -m bench.directory --entries 2000 --candidates 500   # quick

Loads ``--entries`` users (each with a primary address and one alias) into a
slapd started on 127.0.0.1 with ``slapadd``, then resolves ``--candidates``
addresses (70 % known primaries or aliases, 30 % unknown, as in a dictionary
attack) with:

1. one LDAP search per address (the baseline),
2. batched OR-filter searches (``batch_size`` addresses per search),
3. the directory mirror in a SQLite state database (after a paged full read,
   timed separately), answering in the cycle's chunks of 500.

Prints addresses/s for each and the ratios to the baseline; the target is
>= 10,000 addresses/s with the mirror and >= 12x the baseline. All three must
give the same answers, or the run fails.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from connector.directory.ldap import LdapDirectory, LdapOptions
from connector.directory.mapping import OPENLDAP
from connector.directory.mirror import MirrorDirectory
from connector.domain.directory import DirectoryAnswer
from connector.store.database import make_engine, make_sessionmaker, upgrade
from tests.directory.slapd import READER_DN, READER_PASSWORD, SUFFIX, start_slapd

TARGET_RATE = 10_000
TARGET_RATIO = 12
CYCLE_CHUNK = 500  # jobs.cycle.LOOKUP_BATCH


def entries_ldif(count: int) -> str:
    """``count`` inetOrgPerson users under ou=people, with a primary and an alias each."""
    parts = [f"dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n"]
    for i in range(count):
        parts.append(
            f"dn: uid=u{i},ou=people,{SUFFIX}\n"
            "objectClass: inetOrgPerson\nobjectClass: mailRecipient\n"
            f"uid: u{i}\ncn: User {i}\nsn: {i}\ndisplayName: User {i}\n"
            f"mail: user{i}@acme.com\nmailAlternateAddress: alias{i}@acme.com\n"
            f"departmentNumber: dept{i % 50}\n"
        )
    return "\n".join(parts) + "\n"


def candidates(entries: int, count: int, seed: int = 4) -> list[str]:
    rng = random.Random(seed)
    result: list[str] = []
    for n in range(count):
        roll = rng.random()
        if roll < 0.5:
            result.append(f"user{rng.randrange(entries)}@acme.com")
        elif roll < 0.7:
            result.append(f"alias{rng.randrange(entries)}@acme.com")
        else:
            result.append(f"guess{n}-{rng.randrange(10**9)}@acme.com")
    return list(dict.fromkeys(result))


def timed(
    label: str, lookup: Callable[[Sequence[str]], Mapping[str, DirectoryAnswer]], addresses: Sequence[str], chunk: int
) -> tuple[float, dict[str, DirectoryAnswer]]:
    answers: dict[str, DirectoryAnswer] = {}
    started = time.perf_counter()
    for start in range(0, len(addresses), chunk):
        answers.update(lookup(addresses[start : start + chunk]))
    elapsed = time.perf_counter() - started
    rate = len(addresses) / elapsed
    print(f"{label:<32} {len(addresses):>7} addresses in {elapsed:8.3f} s = {rate:>10,.0f} addresses/s")
    return rate, answers


def _same(a: DirectoryAnswer, b: DirectoryAnswer) -> bool:
    if a is None or b is None:
        return a is b
    return (a.dn.lower(), a.primary_address, set(a.aliases), a.kind) == (
        b.dn.lower(),
        b.primary_address,
        set(b.aliases),
        b.kind,
    )


def run(entries: int, candidate_count: int, batch_size: int, workdir: Path) -> dict[str, float]:
    """Run the benchmark; returns the figures (also printed)."""
    print(f"loading {entries:,} entries into slapd with slapadd ...", flush=True)
    started = time.perf_counter()
    slapd = start_slapd(workdir / "slapd", entries_ldif(entries))
    print(f"slapd ready in {time.perf_counter() - started:.1f} s ({slapd.ldap_url})")
    try:
        from pydantic import SecretStr

        options = LdapOptions(
            servers=(slapd.ldap_url,),
            base_dn=SUFFIX,
            bind_dn=READER_DN,
            bind_password=SecretStr(READER_PASSWORD),
            batch_size=batch_size,
            page_size=1000,
        )
        ldap = LdapDirectory(options, OPENLDAP)
        engine = make_engine(f"sqlite:///{workdir / 'state.sqlite'}")
        upgrade(engine)
        now = datetime.now(UTC)
        mirror = MirrorDirectory(
            ldap,
            OPENLDAP,
            make_sessionmaker(engine),
            lambda: now,
            change_attribute="modifyTimestamp",
            max_age=timedelta(hours=1),
            refresh_every=timedelta(minutes=15),
            full_every=timedelta(hours=24),
        )
        addresses = candidates(entries, candidate_count)
        known = sum(1 for a in addresses if not a.startswith("guess"))
        print(f"{len(addresses):,} distinct candidates, {known:,} of them in the directory")

        base_rate, base = timed("one search per address", ldap.lookup_one_by_one, addresses, CYCLE_CHUNK)
        batch_rate, batched = timed(f"batched OR filters ({batch_size}/search)", ldap.lookup, addresses, CYCLE_CHUNK)
        started = time.perf_counter()
        refresh = mirror.refresh(now, full=True)
        fill = time.perf_counter() - started
        print(f"mirror full read: {refresh.entries_total:,} entries in {fill:.1f} s")
        mirror_rate, mirrored = timed("mirror (state database)", mirror.lookup, addresses, CYCLE_CHUNK)

        for name, answers in (("batched", batched), ("mirror", mirrored)):
            wrong = [a for a in addresses if not _same(answers[a], base[a])]
            if wrong:
                raise SystemExit(f"{name} answers differ from the baseline for {len(wrong)} address(es): {wrong[:3]}")
        found = sum(1 for a in addresses if base[a] is not None)
        if found != known:
            raise SystemExit(f"expected {known} found addresses, got {found}")
        ldap.close()
    finally:
        slapd.stop()

    figures = {
        "per_address": base_rate,
        "batched": batch_rate,
        "mirror": mirror_rate,
        "batched_ratio": batch_rate / base_rate,
        "mirror_ratio": mirror_rate / base_rate,
        "mirror_fill_seconds": fill,
    }
    print(f"batched / per-address: {figures['batched_ratio']:.1f}x")
    print(f"mirror  / per-address: {figures['mirror_ratio']:.1f}x")
    ok = mirror_rate >= TARGET_RATE and figures["mirror_ratio"] >= TARGET_RATIO
    verdict = "met" if ok else "NOT met"
    print(f"target (mirror >= {TARGET_RATE:,}/s and >= {TARGET_RATIO}x per-address): {verdict}")
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--candidates", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=100)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-directory-") as tmp:
        run(args.entries, args.candidates, args.batch_size, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
