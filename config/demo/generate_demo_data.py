#!/usr/bin/env python3
"""Generate the demo data set: a Postfix gateway log and an LDAP directory export.

Writes, next to this script:

* ``logs/mail.log``   -- Postfix 3.7 log of the inbound gateway ``mx1`` in the Debian 12
  rsyslog default format (RFC 3339 timestamps with microseconds), 2026-11-02 .. 2026-11-26;
* ``directory.ldif``  -- the mail server's directory (OpenLDAP style LDIF).

The log follows a fixed scenario (see README.md next to this file); random choices
(queue ids, pids, sizes, message-ids, timing jitter, the dictionary-attack addresses)
come from a fixed seed, so every run produces byte-identical files. Standard library
only; does not depend on today's date.

Usage:  python3 config/demo/generate_demo_data.py
"""

from __future__ import annotations

import base64
import functools
import heapq
import itertools
import random
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SEED = 20261102
HOST = "mx1"  # syslog host name in every line
MYHOSTNAME = "mx1.acme.com"  # Postfix myhostname (bounce message-ids)
HERE = Path(__file__).resolve().parent
LOG_PATH = HERE / "logs" / "mail.log"
LDIF_PATH = HERE / "directory.ldif"

US = 1_000_000  # all times are integer microseconds since the epoch (UTC)

# --------------------------------------------------------------------------- network

MAILSTORE = "mailstore.acme.com[10.0.0.5]:25"
RELAY_BY_DOMAIN = {
    "acme.com": MAILSTORE,
    "acme.net": MAILSTORE,
    "mail.acme.com": MAILSTORE,
    "globex.com": "mx.globex.com[10.0.1.7]:25",
    "initech.com": "mail.initech.com[10.0.2.9]:25",
    "partner.test": "mx.partner.test[192.0.2.25]:25",
    "supplier.example": "mx.supplier.example[198.51.100.25]:25",
    "vendor.example": "mx1.vendor.example[198.51.100.45]:25",
    "lists.example.org": "mx.lists.example.org[203.0.113.21]:25",
    "talent.example.net": "mx.talent.example.net[192.0.2.141]:25",
    "spam.example": "mx.spam.example[203.0.113.67]:25",
}
# relay_domains use the "relay" transport (syslog name postfix/relay/smtp); everything
# else (outbound mail, non-delivery notifications) goes through the "smtp" transport.
RELAY_TRANSPORT_DOMAINS = ("acme.com", "acme.net", "mail.acme.com", "globex.com", "initech.com")

# external senders -> the client that hands their mail to the gateway
SENDER_CLIENT = {
    "news@partner.test": "mail.partner.test[192.0.2.10]",
    "j.doe@partner.test": "mail.partner.test[192.0.2.10]",
    "ceo@supplier.example": "smtp.supplier.example[198.51.100.7]",
    "orders@supplier.example": "smtp.supplier.example[198.51.100.7]",
    "billing@vendor.example": "out1.vendor.example[198.51.100.44]",
    "digest@lists.example.org": "mta2.lists.example.org[203.0.113.20]",
    "recruiting@talent.example.net": "mail.talent.example.net[192.0.2.140]",
    "promo@spam.example": "unknown[203.0.113.66]",
    "alice@acme.com": "mailstore.acme.com[10.0.0.5]",  # outbound, via the internal mailstore
}

ATTACKER = "unknown[203.0.113.66]"
MALFORMED_LINE = "postfix/relay/smtp[999]: 4F3A2B1C9D0: to=<broken@acme.com>, relay="
MALFORMED_QID = "4F3A2B1C9D0"

ALNUM = string.ascii_lowercase + string.digits
B62 = string.ascii_letters + string.digits
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def at(day: int, hh: int, mm: int, ss: int = 0, us: int = 0) -> int:
    """A moment in November 2026 (UTC) as integer microseconds."""
    return int(datetime(2026, 11, day, hh, mm, ss, tzinfo=UTC).timestamp()) * US + us


def fmt_ts(t: int) -> str:
    sec, us = divmod(t, US)
    return datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{us:06d}+00:00"


def ctime15(t: int) -> str:
    """``ctime()+4`` truncated to 15 chars, as anvil prints it: ``Nov  2 10:00:00``."""
    d = datetime.fromtimestamp(t // US, UTC)
    return f"{MONTHS[d.month - 1]} {d.day:2d} {d:%H:%M:%S}"


def pf(us: int) -> str:
    """Postfix delay formatting: integer from 10 s, 2 significant digits below."""
    s = us / US
    if s >= 10:
        return str(int(s + 0.5))
    text = f"{s:.1f}" if s >= 1 else f"{s:.2f}"
    return text.rstrip("0").rstrip(".") or "0"


def relay_of(address: str) -> str:
    return RELAY_BY_DOMAIN[address.rpartition("@")[2]]


def relay_host(relay: str) -> str:
    """``mailstore.acme.com[10.0.0.5]:25`` -> ``mailstore.acme.com[10.0.0.5]``."""
    return relay.rsplit(":", 1)[0]


# --------------------------------------------------------------------------- scenario


@dataclass
class Rcpt:
    address: str
    outcome: str = "sent"  # sent | bounce_rcpt | bounce_data | defer_then_sent


@dataclass
class Timing:
    """Offsets (microseconds) relative to the SMTP connect."""

    client: int
    cleanup: int
    qmgr: int
    disconnect: int
    b: int  # in queue manager
    c: int  # connection setup
    d: int  # transmission

    @property
    def delivery(self) -> int:
        return self.qmgr + self.b + self.c + self.d


@dataclass
class Msg:
    t0: int  # SMTP connect
    sender: str
    rcpts: list[Rcpt]
    timing: Timing
    message_id: str
    size: int
    label: str = ""
    pinned: bool = False


def make_timing(r: random.Random) -> Timing:
    client = r.randint(40_000, 380_000)
    cleanup = client + r.randint(1_500, 60_000)
    qmgr = cleanup + r.randint(800, 40_000)
    disconnect = cleanup + r.randint(300, 45_000)
    return Timing(
        client,
        cleanup,
        qmgr,
        disconnect,
        b=r.randint(100, 30_000),
        c=r.randint(500, 25_000),
        d=r.randint(2_000, 220_000),
    )


class Scenario:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.msgs: list[Msg] = []
        self.message_ids: list[str] = []

    def new_message_id(self, sender: str, t: int) -> str:
        r = self.rng
        dom = sender.rpartition("@")[2]
        # written by the sender's MUA/MTA a little before the message reaches the gateway
        created = t // US - r.randint(2, 40)
        stamp = datetime.fromtimestamp(created, UTC).strftime("%Y%m%d%H%M%S")
        if dom == "partner.test":
            mid = f"{stamp}.{r.getrandbits(32):08x}@mail.partner.test"
        elif dom == "supplier.example":
            mid = f"{uuid.UUID(int=r.getrandbits(128), version=4)}@supplier.example"
        elif dom == "vendor.example":
            mid = (
                f"0100019{r.getrandbits(40):010x}-{uuid.UUID(int=r.getrandbits(128), version=4)}"
                f"-000000@email.vendor.example"
            )
        elif dom == "lists.example.org":
            mid = f"list-{r.randint(10**8, 10**9 - 1)}.{''.join(r.choices(B62, k=10))}@lists.example.org"
        elif dom == "talent.example.net":
            mid = f"CAH{''.join(r.choices(B62 + '+_-', k=40))}@mail.talent.example.net"
        elif dom == "spam.example":
            mid = f"{r.getrandbits(48):012x}.{r.randint(1000, 9999)}@spam.example"
        else:  # acme.com (outbound from the internal mailstore)
            mid = f"{stamp}.{r.getrandbits(24):06X}@acme.com"
        assert mid not in self.message_ids
        self.message_ids.append(mid)
        return mid

    def add(
        self,
        t0: int,
        sender: str,
        rcpts: list[str | Rcpt],
        label: str,
        message_id: str | None = None,
        size: int | None = None,
    ) -> Msg:
        rc = [x if isinstance(x, Rcpt) else Rcpt(x) for x in rcpts]
        m = Msg(
            t0=t0 + self.rng.randint(0, 999_999),
            sender=sender,
            rcpts=rc,
            timing=make_timing(self.rng),
            message_id=message_id or self.new_message_id(sender, t0),
            size=size or int(self.rng.lognormvariate(9.2, 0.9)) + 1500,
            label=label,
        )
        self.msgs.append(m)
        return m

    def add_pinned(self, delivery_at: int, sender: str, rcpt: str, label: str) -> Msg:
        """The delivery line lands exactly on ``delivery_at``; every pinned message has the
        same offsets, so corresponding lines of two pinned messages are exactly as far apart
        as their ``delivery_at``."""
        timing = make_timing(random.Random(SEED + 1))
        m = Msg(
            t0=delivery_at - timing.delivery,
            sender=sender,
            rcpts=[Rcpt(rcpt)],
            timing=timing,
            message_id=self.new_message_id(sender, delivery_at),
            size=int(self.rng.lognormvariate(9.2, 0.9)) + 1500,
            label=label,
            pinned=True,
        )
        self.msgs.append(m)
        return m


def dictionary_locals(rng: random.Random, n: int, taken: set[str]) -> list[str]:
    firsts = ["james", "mary", "john", "linda", "mike", "susan", "paul", "karen", "mark", "laura", "steve", "anna"]
    lasts = [
        "smith",
        "jones",
        "brown",
        "miller",
        "davis",
        "wilson",
        "moore",
        "taylor",
        "clark",
        "lewis",
        "walker",
        "young",
    ]
    roles = ["admin", "info", "test", "user", "office", "web", "mail", "support", "billing", "hr"]
    out: list[str] = []
    patterns = itertools.cycle(["rand", "role", "initial", "dotted", "rand", "first", "role", "initial"])
    while len(out) < n:
        p = next(patterns)
        if p == "rand":
            local = rng.choice(string.ascii_lowercase) + "".join(rng.choices(ALNUM, k=rng.randint(4, 6)))
        elif p == "role":
            local = f"{rng.choice(roles)}{rng.randint(1, 9)}"
        elif p == "initial":
            local = f"{rng.choice(firsts)[0]}{rng.choice(lasts)}{rng.randint(10, 99)}"
        elif p == "dotted":
            local = rng.choice(
                [
                    "test.user",
                    "first.last",
                    "no.reply",
                    "mail.admin",
                    "web.master",
                    f"{rng.choice(firsts)}.{rng.choice(lasts)}",
                ]
            )
        else:
            local = f"{rng.choice(firsts)}{rng.randint(1, 999)}"
        if local not in taken:
            taken.add(local)
            out.append(local)
    return out


def build_scenario(rng: random.Random) -> tuple[Scenario, list[str], list[str]]:
    s = Scenario(rng)
    news, jdoe = "news@partner.test", "j.doe@partner.test"
    ceo, orders = "ceo@supplier.example", "orders@supplier.example"
    billing, digest = "billing@vendor.example", "digest@lists.example.org"
    recruit = "recruiting@talent.example.net"

    # 1. alice: 4 distinct messages (Nov 3, 5, 9, 12)
    s.add(at(3, 8, 41, 17), news, ["alice@acme.com"], "1 alice")
    s.msgs.append(
        Msg(
            t0=at(5, 9, 14, 1, 731_004),
            sender=ceo,
            rcpts=[Rcpt("alice@acme.com")],
            timing=make_timing(rng),
            message_id=s.new_message_id(ceo, at(5, 9, 14)),
            size=5312,
            label="1 alice",
        )
    )
    s.add(at(9, 14, 22, 40), billing, ["alice@acme.com"], "1 alice")
    s.add(at(12, 11, 5, 9), digest, ["alice@acme.com"], "1 alice")

    # 2. bob (Nov 4, 10) and his alias robert (Nov 6, 8, 11)
    s.add(at(4, 10, 20, 33), jdoe, ["bob@acme.com"], "2 bob")
    s.add(at(10, 16, 45, 2), orders, ["bob@acme.com"], "2 bob")
    s.add(at(6, 8, 3, 51), news, ["robert@acme.com"], "2 robert")
    s.add(at(8, 13, 30, 12), billing, ["robert@acme.com"], "2 robert")
    s.add(at(11, 9, 50, 44), recruit, ["robert@acme.com"], "2 robert")

    # 3. carol: 2 distinct messages, the first one queued twice (resend, same message-id)
    first = s.add(at(14, 9, 12, 5), ceo, ["carol@acme.com"], "3 carol")
    s.add(at(14, 15, 40, 27), ceo, ["carol@acme.com"], "3 carol (resend)", message_id=first.message_id, size=first.size)
    s.add(at(20, 11, 25, 38), digest, ["carol@acme.com"], "3 carol")

    # 4. dave: 3rd message 14 days + 1 s after the first
    s.add_pinned(at(2, 10, 0, 0), news, "dave@acme.com", "4 dave")
    s.add_pinned(at(9, 10, 0, 0), orders, "dave@acme.com", "4 dave")
    s.add_pinned(at(16, 10, 0, 1), billing, "dave@acme.com", "4 dave")

    # 5. erin: domain alias acme.net -> acme.com
    s.add(at(15, 10, 30, 19), jdoe, ["erin@acme.net"], "5 erin")
    s.add(at(17, 14, 10, 56), recruit, ["erin@acme.net"], "5 erin")
    s.add(at(19, 9, 5, 3), ceo, ["erin@acme.com"], "5 erin")

    # 6. frank@mail.acme.com: subdomain stripping
    s.add(at(16, 11, 0, 42), orders, ["frank@mail.acme.com"], "6 frank")
    s.add(at(17, 11, 30, 8), news, ["frank@mail.acme.com"], "6 frank")
    s.add(at(18, 15, 20, 31), digest, ["frank@mail.acme.com"], "6 frank")

    # 7. sales@acme.com: a group
    for day, hh, mm, snd in [
        (3, 13, 0, orders),
        (7, 10, 0, billing),
        (11, 15, 0, jdoe),
        (16, 9, 30, recruit),
        (20, 14, 0, ceo),
    ]:
        s.add(at(day, hh, mm, rng.randint(0, 59)), snd, ["sales@acme.com"], "7 sales")

    # 8. globex users, SMTP Autocreate
    s.add(at(20, 10, 15, 26), news, ["gina@globex.com"], "8 gina")
    s.add(at(21, 13, 40, 14), orders, ["hank@globex.com"], "8 hank")

    # 9. dictionary attack, 2026-11-22 03:10-03:14
    taken = {
        "alice",
        "alice.archer",
        "bob",
        "robert",
        "carol",
        "dave",
        "erin",
        "frank",
        "gina",
        "hank",
        "ivan",
        "jose",
        "kim",
        "leo",
        "sales",
        "ghost",
        "olduser",
        "tmp",
        "broken",
        "postmaster",
    }
    dict_locals = dictionary_locals(rng, 32, taken)
    # globex.com's Exchange filters recipients: every guess is refused at RCPT TO.
    globex_victims = [f"{x}@globex.com" for x in dict_locals[:20]]
    # acme.com's store accepts everything and bounces later: a spam run sends
    # three messages to each of 12 guessed addresses, so they reach the SmartCreate
    # threshold; only the directory (and the attack guard) stops them.
    acme_victims = [f"{x}@acme.com" for x in dict_locals[20:]]
    targets = [Rcpt(a, "bounce_rcpt") for a in globex_victims] + [Rcpt(a) for a in acme_victims * 3]
    rng.shuffle(targets)
    slots = sorted(rng.sample(range(3, 1500), len(targets)))  # seconds after 03:10:00
    for sec, target in zip(slots, targets, strict=True):
        s.add(at(22, 3, 10) + sec * US, "promo@spam.example", [target], "9 dictionary", size=rng.randint(2900, 4200))

    # 9b. olduser@acme.com: left the company (removed from the directory), still receives mail
    s.add(at(14, 9, 12, 5), news, ["olduser@acme.com"], "9b olduser")
    s.add(at(17, 16, 40, 44), billing, ["olduser@acme.com"], "9b olduser")
    s.add(at(19, 8, 3, 19), digest, ["olduser@acme.com"], "9b olduser")

    # 10. ghost@acme.com: accepted three times, then bounced after DATA
    s.add(at(10, 12, 0, 36), jdoe, ["ghost@acme.com"], "10 ghost")
    s.add(at(11, 12, 30, 7), billing, ["ghost@acme.com"], "10 ghost")
    s.add(at(12, 10, 10, 50), digest, ["ghost@acme.com"], "10 ghost")
    s.add(at(13, 11, 45, 21), ceo, [Rcpt("ghost@acme.com", "bounce_data")], "10 ghost")

    # 11. tmp@acme.com: deferred then delivered in the same queue entry, plus one more
    s.add(at(23, 9, 0, 12), orders, [Rcpt("tmp@acme.com", "defer_then_sent")], "11 tmp")
    s.add(at(25, 14, 2, 47), news, ["tmp@acme.com"], "11 tmp")

    # 12. outbound mail from alice to an unmanaged domain
    s.add(at(6, 15, 0, 22), "alice@acme.com", ["j.doe@partner.test"], "12 outbound")
    s.add(at(17, 16, 20, 5), "alice@acme.com", ["m.smith@partner.test"], "12 outbound")
    s.add(at(26, 17, 5, 40), "alice@acme.com", ["purchasing@partner.test"], "12 outbound")

    # 13. ivan@initech.com: method off
    s.add(at(5, 11, 0, 18), news, ["ivan@initech.com"], "13 ivan")
    s.add(at(8, 10, 0, 29), ceo, ["ivan@initech.com"], "13 ivan")
    s.add(at(12, 15, 0, 3), recruit, ["ivan@initech.com"], "13 ivan")

    # 14. one message, three recipients
    s.add(at(21, 10, 5, 55), ceo, ["alice@acme.com", "bob@acme.com", "frank@mail.acme.com"], "14 multi")
    return s, globex_victims, acme_victims


# --------------------------------------------------------------------------- rendering


class Pids:
    """Linux-like pid allocation: grows with time and activity."""

    def __init__(self, rng: random.Random, start: int, t: int) -> None:
        self.rng, self.pid, self.t = rng, start, t

    def new(self, t: int) -> int:
        if t > self.t:
            self.pid += (t - self.t) // (US * 90)  # background activity, ~40 per hour
            self.t = t
        self.pid += self.rng.randint(1, 12)
        return self.pid


@dataclass
class Proc:
    pid: int
    free_at: int
    uses: int = 0


class Pool:
    """Postfix service processes: reused while idle < max_idle (100 s), up to max_use (100)."""

    def __init__(self, pids: Pids) -> None:
        self.pids = pids
        self.procs: list[Proc] = []

    def get(self, start: int, end: int) -> int:
        idle = [p for p in self.procs if p.free_at <= start and start - p.free_at <= 100 * US and p.uses < 100]
        if idle:
            proc = max(idle, key=lambda p: p.free_at)  # the most recently used idle process
        else:
            proc = Proc(self.pids.new(start), start)
            self.procs.append(proc)
        proc.free_at, proc.uses = max(end, start), proc.uses + 1
        self.procs = [p for p in self.procs if end - p.free_at <= 100 * US]
        return proc.pid


class Renderer:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.lines: list[tuple[int, int, int, str]] = []  # (time, pin-rank, seq, text)
        self.seq = itertools.count()
        self.pinned: list[tuple[int, str]] = []
        self.pids = Pids(rng, 3871, at(2, 0, 0))
        self.qids: set[str] = {MALFORMED_QID}
        self.master_pid = 1021
        self.qmgr_pid = 1187
        self.reset_pools()
        self.jobs: list[tuple[int, int, Callable[[int], None]]] = []

    def reset_pools(self) -> None:
        self.pools = {name: Pool(self.pids) for name in ("smtpd", "cleanup", "relay", "smtp", "bounce")}

    def emit(self, t: int, text: str, pinned: bool = False) -> None:
        self.lines.append((t, 0 if pinned else 1, next(self.seq), text))
        if pinned:
            self.pinned.append((t, text))

    def job(self, t: int, fn: Callable[[int], None]) -> None:
        heapq.heappush(self.jobs, (t, next(self.seq), fn))

    def run(self) -> None:
        while self.jobs:
            t, _, fn = heapq.heappop(self.jobs)
            fn(t)

    def new_qid(self, t: int) -> str:
        """Short Postfix queue id: 5 hex digits of microseconds + queue file inode in hex."""
        while True:
            qid = f"{t % US:05X}{self.rng.randint(0x160000, 0x16FFFF):X}"
            if qid not in self.qids:
                self.qids.add(qid)
                return qid

    def downstream_reply(self, relay: str, msg: Msg) -> tuple[str, str]:
        r = self.rng
        if relay.startswith("mx.globex.com"):  # Exchange
            return "2.6.0", (
                f"250 2.6.0 <{msg.message_id}> [InternalId={r.randint(10**12, 10**13 - 1)}, "
                f"Hostname=EXCH01.globex.com] Queued mail for delivery"
            )
        if relay.startswith("mx.spam.example"):  # Exim
            exim_id = f"1v{''.join(r.choices(B62, k=4))}-{r.randint(0, 999999):06d}-{''.join(r.choices(B62, k=2))}"
            return "2.0.0", f"250 OK id={exim_id}"
        # Postfix downstream with long queue ids
        return "2.0.0", f"250 2.0.0 Ok: queued as 4d{''.join(r.choices(B62, k=4))}{''.join(r.choices(B62, k=8))}"

    # -- one message ---------------------------------------------------------------

    def render(self, _t: int, m: Msg) -> None:
        r, tm = self.rng, m.timing
        t0 = m.t0
        client = SENDER_CLIENT[m.sender]
        n = len(m.rcpts)
        smtpd = self.pools["smtpd"].get(t0, t0 + tm.disconnect)
        cleanup = self.pools["cleanup"].get(t0 + tm.client, t0 + tm.cleanup)
        t_client = t0 + tm.client
        qid = self.new_qid(t_client)
        self.emit(t0, f"postfix/smtpd[{smtpd}]: connect from {client}")
        self.emit(t_client, f"postfix/smtpd[{smtpd}]: {qid}: client={client}")
        self.emit(t0 + tm.cleanup, f"postfix/cleanup[{cleanup}]: {qid}: message-id=<{m.message_id}>")
        t_qmgr = t0 + tm.qmgr
        self.emit(
            t_qmgr, f"postfix/qmgr[{self.qmgr_pid}]: {qid}: from=<{m.sender}>, size={m.size}, nrcpt={n} (queue active)"
        )
        self.emit(
            t0 + tm.disconnect,
            f"postfix/smtpd[{smtpd}]: disconnect from {client} ehlo=1 mail=1 rcpt={n} data=1 quit=1 commands={4 + n}",
        )

        dom = m.rcpts[0].address.rpartition("@")[2]
        pool = "relay" if dom in RELAY_TRANSPORT_DOMAINS else "smtp"
        agent = "postfix/relay/smtp" if pool == "relay" else "postfix/smtp"
        relay = relay_of(m.rcpts[0].address)
        assert all(relay_of(x.address) == relay for x in m.rcpts)
        t_start = t_qmgr + tm.b
        td = t0 + tm.delivery
        apid = self.pools[pool].get(t_start, td)
        delay, delays = pf(td - t_client), f"{pf(t_qmgr - t_client)}/{pf(tm.b)}/{pf(tm.c)}/{pf(tm.d)}"
        dsn_ok, reply_ok = self.downstream_reply(relay, m)
        t = td
        bounced = False
        for i, rc in enumerate(m.rcpts):
            t = td + i * r.randint(40, 400)
            head = f"{agent}[{apid}]: {qid}: to=<{rc.address}>, relay={relay}, delay={delay}, delays={delays}, "
            if rc.outcome == "sent":
                self.emit(t, head + f"dsn={dsn_ok}, status=sent ({reply_ok})", pinned=m.pinned)
            elif rc.outcome == "bounce_rcpt" and relay.startswith("mx.globex.com"):  # Exchange recipient filter
                bounced = True
                self.emit(
                    t,
                    head + f"dsn=5.1.10, status=bounced (host {relay_host(relay)} said: 550 5.1.10 "
                    "RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup "
                    "(in reply to RCPT TO command))",
                )
            elif rc.outcome == "bounce_rcpt":
                bounced = True
                self.emit(
                    t,
                    head + f"dsn=5.1.1, status=bounced (host {relay_host(relay)} said: 550 5.1.1 "
                    f"<{rc.address}>: Recipient address rejected: User unknown in virtual "
                    f"mailbox table (in reply to RCPT TO command))",
                )
            elif rc.outcome == "bounce_data":
                bounced = True
                self.emit(
                    t,
                    head + f"dsn=5.1.1, status=bounced (host {relay_host(relay)} said: 550 5.1.1 "
                    f"<{rc.address}>: mailbox unavailable (in reply to end of DATA command))",
                )
            elif rc.outcome == "defer_then_sent":
                self.emit(
                    t,
                    head + f"dsn=4.3.0, status=deferred (host {relay_host(relay)} said: 451 4.3.0 "
                    f"<{rc.address}>: Temporary lookup failure (in reply to RCPT TO command))",
                )
                retry_at = t + 1800 * US - r.randint(50_000, 400_000)
                self.job(
                    retry_at,
                    functools.partial(
                        self.render_retry, m=m, rc=rc, relay=relay, agent=agent, qid=qid, t_client=t_client
                    ),
                )
                return  # still queued: no "removed" until the retry
            else:
                raise ValueError(rc.outcome)
        if bounced:
            t = self.render_ndr(t, m, qid)
        else:
            t += r.randint(200, 1500)
            self.emit(t, f"postfix/qmgr[{self.qmgr_pid}]: {qid}: removed")

    def render_retry(self, tr: int, *, m: Msg, rc: Rcpt, relay: str, agent: str, qid: str, t_client: int) -> None:
        r = self.rng
        self.emit(
            tr,
            f"postfix/qmgr[{self.qmgr_pid}]: {qid}: from=<{m.sender}>, size={m.size}, "
            f"nrcpt={len(m.rcpts)} (queue active)",
        )
        b, c, d = r.randint(100, 20_000), r.randint(500, 20_000), r.randint(2_000, 120_000)
        td = tr + b + c + d
        apid = self.pools["relay"].get(tr + b, td)
        dsn, reply = self.downstream_reply(relay, m)
        self.emit(
            td,
            f"{agent}[{apid}]: {qid}: to=<{rc.address}>, relay={relay}, delay={pf(td - t_client)}, "
            f"delays={pf(tr - t_client)}/{pf(b)}/{pf(c)}/{pf(d)}, dsn={dsn}, status=sent ({reply})",
        )
        self.emit(td + r.randint(200, 1500), f"postfix/qmgr[{self.qmgr_pid}]: {qid}: removed")

    def render_ndr(self, t: int, m: Msg, qid: str) -> int:
        """Sender non-delivery notification, line order as in the real samples."""
        r = self.rng
        t += r.randint(1_000, 4_000)
        ndr = self.new_qid(t)
        cleanup = self.pools["cleanup"].get(t, t + 2_000)
        stamp = datetime.fromtimestamp(t // US, UTC).strftime("%Y%m%d%H%M%S")
        self.emit(t, f"postfix/cleanup[{cleanup}]: {ndr}: message-id=<{stamp}.{ndr}@{MYHOSTNAME}>")
        t += r.randint(300, 1_500)
        bpid = self.pools["bounce"].get(t - 3_000, t)
        self.emit(t, f"postfix/bounce[{bpid}]: {qid}: sender non-delivery notification: {ndr}")
        t += r.randint(100, 1_200)
        t_active = t
        self.emit(
            t,
            f"postfix/qmgr[{self.qmgr_pid}]: {ndr}: from=<>, size={2100 + min(m.size, 50_000)}, nrcpt=1 (queue active)",
        )
        t += r.randint(200, 900)
        self.emit(t, f"postfix/qmgr[{self.qmgr_pid}]: {qid}: removed")
        b, c, d = r.randint(100, 15_000), r.randint(20_000, 400_000), r.randint(20_000, 500_000)
        td = t_active + b + c + d
        relay = relay_of(m.sender)
        spid = self.pools["smtp"].get(t_active + b, td)
        dsn, reply = self.downstream_reply(relay, m)
        t_create = t_active - r.randint(1_500, 3_000)
        self.emit(
            td,
            f"postfix/smtp[{spid}]: {ndr}: to=<{m.sender}>, relay={relay}, delay={pf(td - t_create)}, "
            f"delays={pf(t_active - t_create)}/{pf(b)}/{pf(c)}/{pf(d)}, dsn={dsn}, status=sent ({reply})",
        )
        td += r.randint(200, 1500)
        self.emit(td, f"postfix/qmgr[{self.qmgr_pid}]: {ndr}: removed")
        return td

    # -- noise -----------------------------------------------------------------------

    def cron_daily(self, t: int) -> None:
        pid = self.pids.new(t)
        self.emit(t, f"CRON[{pid}]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)")
        self.emit(
            t + self.rng.randint(1_000, 5_000),
            f"CRON[{pid + 1}]: (root) CMD (test -x /usr/sbin/anacron "
            f"|| {{ cd / && run-parts --report /etc/cron.daily; }})",
        )
        self.pids.pid += 1
        self.emit(
            t + self.rng.randint(2 * US, 9 * US), f"CRON[{pid}]: pam_unix(cron:session): session closed for user root"
        )

    def ssh_admin(self, t: int) -> None:
        r = self.rng
        pid, port = self.pids.new(t), r.randint(40000, 60999)
        self.emit(
            t,
            f"sshd[{pid}]: Accepted publickey for admin from 10.9.0.4 port {port} ssh2: "
            f"ED25519 SHA256:Jx1kq8qRz1xGmBfA0c3mN2YwqKsa7b9Qd4PzS0wE1vU",
        )
        self.emit(
            t + r.randint(5_000, 30_000),
            f"sshd[{pid}]: pam_unix(sshd:session): session opened for user admin(uid=1000) by (uid=0)",
        )
        t_end = t + r.randint(120, 1500) * US
        self.emit(t_end, f"sshd[{pid}]: Received disconnect from 10.9.0.4 port {port}:11: disconnected by user")
        self.emit(t_end + r.randint(100, 900), f"sshd[{pid}]: Disconnected from user admin 10.9.0.4 port {port}")
        self.emit(
            t_end + r.randint(1_000, 9_000), f"sshd[{pid}]: pam_unix(sshd:session): session closed for user admin"
        )

    def ssh_probe(self, t: int) -> None:
        r = self.rng
        pid, port, user = self.pids.new(t), r.randint(30000, 65000), r.choice(["oracle", "ubuntu", "git", "test"])
        ip = f"198.51.100.{r.randint(150, 250)}"
        self.emit(t, f"sshd[{pid}]: Invalid user {user} from {ip} port {port}")
        self.emit(
            t + r.randint(200_000, 900_000),
            f"sshd[{pid}]: Connection closed by invalid user {user} {ip} port {port} [preauth]",
        )

    def postfix_reload(self, t: int) -> None:
        self.emit(t, f"postfix/postfix-script[{self.pids.new(t)}]: refreshing the Postfix mail system")
        self.emit(
            t + self.rng.randint(20_000, 80_000),
            f"postfix/master[{self.master_pid}]: reload -- version 3.7.11, configuration /etc/postfix",
        )
        # the reload restarts qmgr and lets the other daemons exit
        self.qmgr_pid = self.pids.new(t + 100_000)
        self.reset_pools()

    def anvil(self, t: int, client_ip: str, connects: list[int]) -> None:
        rate, rate_at = 0, connects[0]
        for i, c in enumerate(connects):
            k = sum(1 for x in connects[: i + 1] if c - x < 60 * US)
            if k > rate:
                rate, rate_at = k, c
        pid = self.pids.new(t)
        self.emit(
            t,
            f"postfix/anvil[{pid}]: statistics: max connection rate {rate}/60s for "
            f"(smtp:{client_ip}) at {ctime15(rate_at)}",
        )
        self.emit(
            t + 40,
            f"postfix/anvil[{pid}]: statistics: max connection count 1 for "
            f"(smtp:{client_ip}) at {ctime15(connects[0])}",
        )
        self.emit(t + 80, f"postfix/anvil[{pid}]: statistics: max cache size 1 at {ctime15(connects[0])}")

    # -- output ----------------------------------------------------------------------

    def ordered_lines(self) -> list[str]:
        out: list[tuple[int, str]] = []
        prev = 0
        for t, _, _, text in sorted(self.lines):
            t = max(t, prev + 1)  # strictly increasing timestamps
            out.append((t, text))
            prev = t
        index = {text: t for t, text in out}
        for t, text in self.pinned:
            assert index[text] == t, f"pinned line moved: {text}"
        return [f"{fmt_ts(t)} {HOST} {text}" for t, text in out]


def build_log(rng: random.Random) -> tuple[list[str], dict[str, Any]]:
    scenario, globex_victims, acme_victims = build_scenario(rng)
    rd = Renderer(rng)
    for m in scenario.msgs:
        rd.job(m.t0, functools.partial(rd.render, m=m))
    for day in range(2, 27):
        rd.job(at(day, 6, 25, 1, rng.randint(0, 400_000)), rd.cron_daily)
    for day, hh, mm in [(4, 9, 2), (10, 8, 47), (16, 14, 31), (24, 11, 12)]:
        rd.job(at(day, hh, mm, rng.randint(0, 59), rng.randint(0, 999_999)), rd.ssh_admin)
    for day, hh, mm in [(7, 2, 13), (19, 23, 41), (22, 4, 2)]:
        rd.job(at(day, hh, mm, rng.randint(0, 59), rng.randint(0, 999_999)), rd.ssh_probe)
    rd.job(at(15, 2, 0, 4, 512_337), rd.postfix_reload)
    burst = sorted(m.t0 for m in scenario.msgs if m.sender == "promo@spam.example")
    rd.job(burst[-1] + 411 * US + 8_421, lambda t: rd.anvil(t, "203.0.113.66", burst))
    rd.job(at(18, 12, 0), lambda t: rd.emit(t, MALFORMED_LINE, pinned=True))
    rd.run()
    info = {"messages": scenario.msgs, "globex_victims": globex_victims, "acme_victims": acme_victims}
    return rd.ordered_lines(), info


# --------------------------------------------------------------------------- directory

BASE = "dc=acme,dc=com"
USERS = [
    # uid, given name, surname, primary mail, aliases, department
    ("alice", "Alice", "Archer", "alice@acme.com", ["alice.archer@acme.com"], "Engineering"),
    ("bob", "Bob", "Baker", "bob@acme.com", ["robert@acme.com"], "Sales"),
    ("carol", "Carol", "Chen", "carol@acme.com", [], "Finance"),
    ("dave", "Dave", "Dalton", "dave@acme.com", [], "Operations"),
    ("erin", "Erin", "Estrada", "erin@acme.com", [], "Marketing"),
    ("frank", "Frank", "Fischer", "frank@acme.com", [], "Engineering"),
    ("gina", "Gina", "Gomez", "gina@globex.com", [], "Research"),
    ("hank", "Hank", "Hill", "hank@globex.com", [], "Facilities"),
    ("ivan", "Ivan", "Ivanov", "ivan@initech.com", [], "IT"),
    # users who receive no mail in the demo log
    ("jose", "José", "Núñez", "jose@acme.com", ["jose.nunez@acme.com"], "Legal"),
    ("kim", "Kim", "Kowalski", "kim@acme.com", [], "Sales"),
    ("leo", "Leo", "Lambert", "leo@globex.com", [], "Research"),
]


def ldif_attr(name: str, value: str) -> str:
    """RFC 2849: values that are not SAFE-STRINGs (here: non-ASCII) are base64 encoded."""
    if not value.isascii() or value[:1] in (" ", ":", "<") or value.endswith(" "):
        return f"{name}:: {base64.b64encode(value.encode('utf-8')).decode('ascii')}"
    return f"{name}: {value}"


def entry_uuid(dn: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"ldap://demo/{dn}"))


def build_ldif() -> str:
    blocks: list[list[str]] = [
        [
            "# Demo directory for the mail-flow provisioning connector (generated by generate_demo_data.py)",
            "version: 1",
        ],
        [
            f"dn: {BASE}",
            "objectClass: top",
            "objectClass: dcObject",
            "objectClass: organization",
            "dc: acme",
            "o: Acme Corp",
            f"entryUUID: {entry_uuid(BASE)}",
        ],
        [
            f"dn: ou=people,{BASE}",
            "objectClass: top",
            "objectClass: organizationalUnit",
            "ou: people",
            f"entryUUID: {entry_uuid('ou=people,' + BASE)}",
        ],
        [
            f"dn: ou=groups,{BASE}",
            "objectClass: top",
            "objectClass: organizationalUnit",
            "ou: groups",
            f"entryUUID: {entry_uuid('ou=groups,' + BASE)}",
        ],
    ]
    for uid, given, sn, mail, aliases, dept in USERS:
        dn = f"uid={uid},ou=people,{BASE}"
        block = [
            f"dn: {dn}",
            "objectClass: top",
            "objectClass: person",
            "objectClass: organizationalPerson",
            "objectClass: inetOrgPerson",
            f"uid: {uid}",
            ldif_attr("cn", f"{given} {sn}"),
            ldif_attr("sn", sn),
            ldif_attr("givenName", given),
            ldif_attr("displayName", f"{given} {sn}"),
            f"mail: {mail}",
        ]
        block += [f"mailAlternateAddress: {a}" for a in aliases]
        block += [f"entryUUID: {entry_uuid(dn)}", ldif_attr("departmentNumber", dept)]
        blocks.append(block)
    dn = f"cn=sales,ou=groups,{BASE}"
    blocks.append(
        [
            f"dn: {dn}",
            "objectClass: top",
            "objectClass: groupOfNames",
            "cn: sales",
            "description: Sales team distribution list",
            "mail: sales@acme.com",
            f"member: uid=bob,ou=people,{BASE}",
            f"member: uid=kim,ou=people,{BASE}",
            f"member: uid=alice,ou=people,{BASE}",
            f"entryUUID: {entry_uuid(dn)}",
        ]
    )
    return "\n\n".join("\n".join(b) for b in blocks) + "\n"


def main() -> None:
    rng = random.Random(SEED)
    lines, info = build_log(rng)
    LOG_PATH.parent.mkdir(parents=True, exist_ok=True)
    LOG_PATH.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")
    LDIF_PATH.write_text(build_ldif(), encoding="utf-8", newline="\n")
    print(
        f"wrote {LOG_PATH.relative_to(HERE.parent.parent)} ({len(lines)} lines, "
        f"{len(info['messages'])} inbound/outbound messages)"
    )
    print(f"wrote {LDIF_PATH.relative_to(HERE.parent.parent)} ({len(USERS)} users, 1 group)")
    print("dictionary attack, globex.com: " + " ".join(info["globex_victims"]))
    print("dictionary attack, acme.com:   " + " ".join(info["acme_victims"]))


if __name__ == "__main__":
    main()
