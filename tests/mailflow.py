"""Mail flow for tests: Postfix logs and Active Directory LDIF files built for scenario
tests, and a real Postfix on 127.0.0.1 that writes real logs.

``MailFlow`` lines have the shapes of the real captures in tests/data/postfix/ (cleanup
message-id, qmgr from=, the relay's to=... status= line, qmgr removed). ``real_postfix()``
starts the Debian package's Postfix with its own configuration (see ``RealPostfix``).
"""

from __future__ import annotations

import base64
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any


@dataclass
class MailFlow:
    """Postfix log lines of an inbound gateway, in time order when written."""

    relays: dict[str, str] = field(default_factory=dict)  # domain -> "host[ip]:25"
    lines: list[tuple[datetime, int, str]] = field(default_factory=list)
    _qid: int = 0x1A2B3C0000

    def _relay(self, rcpt: str) -> str:
        return self.relays.get(rcpt.rpartition("@")[2].lower(), "mx.other.test[192.0.2.99]:25")

    def _add(self, at: datetime, text: str) -> None:
        self.lines.append((at, len(self.lines), f"{at.isoformat()} mx1 {text}"))

    def deliver(
        self,
        at: datetime,
        rcpt: str,
        *,
        sender: str = "someone@partner.test",
        message_id: str | None = None,
        reply: str = "250 2.0.0 Ok: queued as 4dAbC",
        status: str = "sent",
        dsn: str = "2.0.0",
        stage: str | None = None,
    ) -> str:
        """One message to one recipient; returns the queue id."""
        self._qid += 1
        qid = f"{self._qid:X}"
        message_id = message_id or f"{qid.lower()}.{at.strftime('%Y%m%d%H%M%S')}@partner.test"
        relay = self._relay(rcpt)
        self._add(at, f"postfix/cleanup[100]: {qid}: message-id=<{message_id}>")
        self._add(at, f"postfix/qmgr[101]: {qid}: from=<{sender}>, size=1000, nrcpt=1 (queue active)")
        if status == "sent":
            text = f"({reply})"
        else:
            host = relay.rpartition(":")[0]
            text = f"(host {host} said: {reply}" + (f" (in reply to {stage} command))" if stage else ")")
        self._add(
            at,
            f"postfix/relay/smtp[102]: {qid}: to=<{rcpt}>, relay={relay}, delay=0.2, "
            f"delays=0.01/0/0.01/0.18, dsn={dsn}, status={status} {text}",
        )
        self._add(at, f"postfix/qmgr[101]: {qid}: removed")
        return qid

    def refused_at_rcpt(self, at: datetime, rcpt: str, **kwargs: str) -> str:
        return self.deliver(
            at,
            rcpt,
            reply=f"550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown",
            status="bounced",
            dsn="5.1.1",
            stage="RCPT TO",
            **kwargs,
        )

    def bounced_after_data(self, at: datetime, rcpt: str, **kwargs: str) -> str:
        return self.deliver(
            at,
            rcpt,
            reply=f"550 5.1.1 <{rcpt}>: mailbox unavailable",
            status="bounced",
            dsn="5.1.1",
            stage="end of DATA",
            **kwargs,
        )

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(text + "\n" for _, _, text in sorted(self.lines)), encoding="utf-8")


@dataclass
class AdDirectory:
    """An Active Directory export as LDIF (``schema_preset: active_directory``)."""

    base: str = "dc=corp,dc=test"
    entries: list[str] = field(default_factory=list)

    def _entry(self, dn: str, classes: tuple[str, ...], attrs: list[tuple[str, str]]) -> None:
        guid = base64.b64encode(dn.encode()[:16].ljust(16, b"\0")).decode()
        lines = [f"dn: {dn}", *(f"objectClass: {c}" for c in classes), *(f"{k}: {v}" for k, v in attrs)]
        lines.append(f"objectGUID:: {guid}")
        self.entries.append("\n".join(lines))

    def user(
        self, name: str, mail: str, aliases: tuple[str, ...] = (), *, disabled: bool = False, shared: bool = False
    ) -> None:
        attrs = [("cn", name), ("displayName", name), ("mail", mail), ("proxyAddresses", f"SMTP:{mail}")]
        attrs += [("proxyAddresses", f"smtp:{a}") for a in aliases]
        attrs.append(("userAccountControl", "514" if disabled else "512"))
        if shared:
            attrs.append(("msExchRecipientTypeDetails", "4"))
        self._entry(f"CN={name},OU=People,{self.base}", ("top", "person", "organizationalPerson", "user"), attrs)

    def group(self, name: str, mail: str) -> None:
        self._entry(f"CN={name},OU=Groups,{self.base}", ("top", "group"), [("cn", name), ("mail", mail)])

    def contact(self, name: str, mail: str) -> None:
        classes = ("top", "person", "organizationalPerson", "contact")
        self._entry(f"CN={name},OU=Contacts,{self.base}", classes, [("cn", name), ("mail", mail)])

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("version: 1\n\n" + "\n\n".join(self.entries) + "\n", encoding="utf-8")


# --- A real Postfix on 127.0.0.1 -------------------------------------------------------

# The downstream mailbox server's users: 250 for these, 550 5.1.1 for anyone else.
KNOWN = {"alice@example.com", "bob@example.com", "sender@partner.test", "carol@example.org", "dave@example.net"}
# ... and one whose mailbox is temporarily unavailable: ``451 4.3.0`` (Postfix defers it).
TEMPFAIL = {"tempfail@example.com"}

# Give up on a deferred message after one attempt (``real_postfix(main_cf_extra=...)``):
# Postfix logs ``status=deferred`` and then qmgr's ``status=expired, returned to sender``.
EXPIRE_AT_ONCE = "maximal_queue_lifetime = 0\nbounce_queue_lifetime = 0\n"

MASTER_CF = """\
{port} inet n - n - - smtpd
{screen_port} inet n - n - 1 postscreen
smtpd pass - - n - - smtpd
pickup fifo n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr fifo n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
nocache unix - - n - - smtp -o address_verify_negative_cache=no
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""

# example.com: relayed, the downstream decides (the gateway accepts any recipient).
# example.net: the gateway's recipient table knows only dave: others are refused at RCPT.
# example.org, nocache.example.org: reject_unverified_recipient (verify(8) probes); the
# nocache transport does not cache a negative answer (undeliverable-but-not-cached).
# postscreen on screen_port denylists 127.0.0.1 and rejects every RCPT (enforce).
MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
config_directory = {dir}/etc
daemon_directory = /usr/lib/postfix/sbin
command_directory = /usr/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = mx1.gateway.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains = example.com example.net example.org nocache.example.org
relay_recipient_maps = inline:{{ @example.com=ok dave@example.net=ok @example.org=ok @nocache.example.org=ok }}
transport_maps = inline:{{ example.com=relay:[127.0.0.1]:{downstream} example.net=relay:[127.0.0.1]:{downstream}
    example.org=relay:[127.0.0.1]:{downstream} nocache.example.org=nocache:[127.0.0.1]:{downstream}
    partner.test=smtp:[127.0.0.1]:{downstream} }}
smtpd_recipient_restrictions = check_recipient_access
    inline:{{ example.org=reject_unverified_recipient nocache.example.org=reject_unverified_recipient }}
unverified_recipient_reject_code = 550
address_verify_poll_delay = 1s
address_verify_poll_count = 2
smtpd_data_restrictions = reject_multi_recipient_bounce
postscreen_access_list = inline:{{ 127.0.0.1=reject }}
postscreen_denylist_action = enforce
postscreen_greet_wait = 1s
smtp_dns_support_level = disabled
smtputf8_enable = no
alias_maps =
alias_database =
local_recipient_maps =
biff = no
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
syslog_name = postfix
"""


class Downstream:
    """The mailbox server behind the gateway (an aiosmtpd handler): 250 for ``KNOWN``
    users, ``451 4.3.0`` for ``TEMPFAIL`` ones, ``550 5.1.1`` for others."""

    def __init__(self) -> None:
        self.received: list[Any] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address.lower() in TEMPFAIL:
            return f"451 4.3.0 <{address}>: Mailbox temporarily unavailable"
        if address.lower() not in KNOWN:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(envelope)
        return "250 2.0.0 Ok: queued"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class RealPostfix:
    """A running Postfix gateway: smtpd on ``port``, postscreen on ``screen_port``, its
    log (postlogd's ``maillog_file``) in ``maillog``, relaying to ``downstream``."""

    port: int
    screen_port: int
    maillog: Path
    base: Path
    downstream: Downstream


@contextmanager
def real_postfix(main_cf_extra: str = "") -> Iterator[RealPostfix]:
    """Start Postfix (and its aiosmtpd downstream) in a temp dir; stop and remove it after.

    ``main_cf_extra`` is appended to ``MAIN_CF`` (e.g. ``EXPIRE_AT_ONCE``): one gateway's
    settings, not every test's."""
    if shutil.which("postfix") is None:
        raise RuntimeError("postfix is not installed (./dev installs it)")
    from aiosmtpd.controller import Controller  # a test dependency: imported when a test needs it

    handler = Downstream()
    downstream = Controller(handler, hostname="127.0.0.1", port=free_port())
    downstream.start()
    # Postfix daemons run as user postfix: the directory must be reachable (pytest's tmp is 0700).
    base = Path(tempfile.mkdtemp(prefix="connector-postfix-", dir="/tmp"))
    base.chmod(0o755)
    port, screen_port = free_port(), free_port()
    etc = base / "etc"
    etc.mkdir()
    (base / "data").mkdir()
    (base / "queue").mkdir()
    shutil.chown(base / "data", "postfix")
    (etc / "main.cf").write_text(MAIN_CF.format(dir=base, downstream=downstream.port) + main_cf_extra)
    (etc / "master.cf").write_text(MASTER_CF.format(port=port, screen_port=screen_port))
    try:
        subprocess.run(["postfix", "-c", str(etc), "start"], check=True, capture_output=True)
        yield RealPostfix(port, screen_port, base / "maillog", base, handler)
    finally:
        subprocess.run(["postfix", "-c", str(etc), "stop"], capture_output=True)
        downstream.stop()
        shutil.rmtree(base, ignore_errors=True)


def send(
    port: int, recipients: list[str], subject: str, *, sender: str = "sender@partner.test"
) -> dict[str, tuple[int, bytes]]:
    """Send one message by SMTP; returns the recipients the server refused (as smtplib does)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message.set_content("hello")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        return client.send_message(message, from_addr=sender, to_addrs=recipients)


def wait_for(path: Path, needles: list[str], timeout: float = 30) -> str:
    """The log's text once it contains every needle; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace") if path.exists() else ""
        if all(needle in text for needle in needles):
            return text
        time.sleep(0.2)
    raise AssertionError(f"Postfix did not log {needles} in {timeout}s:\n{text[-3000:]}")
