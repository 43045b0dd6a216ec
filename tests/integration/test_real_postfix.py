"""End to end with a real Postfix (Debian package) on 127.0.0.1.

The test starts Postfix with its own configuration in a temp dir (own queue,
``maillog_file`` via postlogd, no chroot), relaying to an aiosmtpd server that
answers 250 for known users and ``550 5.1.1`` for others. It sends mail with
smtplib and ingests the log Postfix wrote.
"""

from __future__ import annotations

import shutil
import smtplib
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from connector.cli import main
from connector.domain.events import DeliveryStatus
from connector.sources.postfix import PostfixLogSource

KNOWN = {"alice@example.com", "bob@example.com", "sender@partner.test"}

MASTER_CF = """\
{port} inet n - n - - smtpd
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
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""

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
relay_domains = example.com
transport_maps = inline:{{ example.com=relay:[127.0.0.1]:{downstream} partner.test=smtp:[127.0.0.1]:{downstream} }}
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
    """The mailbox server behind the gateway: 250 for known users, 550 5.1.1 for others."""

    def __init__(self) -> None:
        self.received: list[Any] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
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


@pytest.fixture
def postfix() -> Iterator[tuple[int, Path]]:
    if shutil.which("postfix") is None:
        pytest.fail("postfix is not installed (./dev installs it)")
    downstream = Controller(Downstream(), hostname="127.0.0.1", port=free_port())
    downstream.start()
    # Postfix daemons run as user postfix: the directory must be reachable (pytest's tmp is 0700).
    base = Path(tempfile.mkdtemp(prefix="connector-postfix-", dir="/tmp"))
    base.chmod(0o755)
    port = free_port()
    etc = base / "etc"
    etc.mkdir()
    (base / "data").mkdir()
    (base / "queue").mkdir()
    shutil.chown(base / "data", "postfix")
    (etc / "main.cf").write_text(MAIN_CF.format(dir=base, downstream=downstream.port))
    (etc / "master.cf").write_text(MASTER_CF.format(port=port))
    subprocess.run(["postfix", "-c", str(etc), "start"], check=True, capture_output=True)
    try:
        yield port, base / "maillog"
    finally:
        subprocess.run(["postfix", "-c", str(etc), "stop"], capture_output=True)
        downstream.stop()
        shutil.rmtree(base, ignore_errors=True)


def send(port: int, recipients: list[str], subject: str) -> None:
    message = EmailMessage()
    message["From"] = "sender@partner.test"
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message.set_content("hello")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.send_message(message, from_addr="sender@partner.test", to_addrs=recipients)


def wait_for(path: Path, needles: list[str], timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace") if path.exists() else ""
        if all(text.count(needle) >= 1 for needle in needles):
            return text
        time.sleep(0.2)
    raise AssertionError(f"Postfix did not log {needles} in {timeout}s:\n{text[-3000:]}")


def test_real_postfix_log_is_ingested(postfix: tuple[int, Path], tmp_path: Path) -> None:
    port, maillog = postfix
    send(port, ["alice@example.com"], "one")
    send(port, ["alice@example.com", "nouser@example.com", "bob@example.com"], "two")
    wait_for(maillog, ["to=<nouser@example.com>", "sender non-delivery notification", "to=<sender@partner.test>"])
    time.sleep(0.5)  # let the last lines of the NDR's delivery land

    events = [e for b in PostfixLogSource("gw", maillog).read(None) for e in b.events]
    got = {(e.recipient, e.status) for e in events}
    assert ("alice@example.com", DeliveryStatus.SENT) in got
    alice = [e for e in events if e.recipient == "alice@example.com"]
    assert len({e.message_id for e in alice}) == 2 and all(e.reply_class == 2 for e in alice)
    [nouser] = [e for e in events if e.recipient == "nouser@example.com"]
    assert nouser.status is DeliveryStatus.BOUNCED and nouser.rcpt_stage and nouser.dsn == "5.1.1"
    [ndr] = [e for e in events if e.recipient == "sender@partner.test"]
    assert ndr.null_sender and ndr.ndr_for == nouser.queue_id and ndr.ndr_recipients == ("nouser@example.com",)

    (tmp_path / "dir.ldif").write_text("")
    config = tmp_path / "connector.yaml"
    config.write_text(
        f"state: {{url: 'sqlite:///{tmp_path}/state.sqlite'}}\n"
        f"sources: [{{name: gw, path: '{maillog}', timezone: UTC}}]\n"
        "domains: {example.com: {org: Example, method: smartcreate}, partner.test: {org: P, method: autocreate}}\n"
        "directory: {type: ldif, path: dir.ldif}\n"
    )
    assert main(["ingest", "-c", str(config)]) == 0
    with sqlite3.connect(tmp_path / "state.sqlite") as db:
        rows = dict(db.execute("SELECT address, data FROM evidence").fetchall())
    assert '"recent": [{' in rows["alice@example.com"]  # two distinct messages counted
    assert rows["alice@example.com"].count('"message_id"') == 2
    assert '"recent": []' in rows["sender@partner.test"]  # the NDR counts for nobody
    assert '"accepted_at": null' in rows["sender@partner.test"]
    assert '"invalidated_at": null' not in rows["nouser@example.com"]
