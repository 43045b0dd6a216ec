"""A real Exim 4 (Debian ``exim4-daemon-light``) on 127.0.0.1 for the tests.

The package conflicts with ``postfix`` (both provide the MTA), so it is never
installed: ``./dev test`` downloads the .deb and unpacks it into
``.venv/exim4`` (``apt-get download`` + ``dpkg-deb -x``, setuid bit removed),
installs the libraries the binary links against, and creates the
``Debian-exim`` system user that the binary looks up when it starts (as the
package's postinst would). ``EXIM_ROOT`` points elsewhere if needed.

Each server gets its own temp dir: configuration, spool, logs and mailboxes.
Exim runs in the foreground (``-bdf``) with ``-C`` as the unprivileged
``Debian-exim`` user (``Popen(user=...)`` when the tests run as root; the
current user otherwise), which is also its ``exim_user``: every delivery,
local ones included, runs as that user. When that user cannot reach the
unpacked binary (a checkout under /root), it is copied into the temp dir
(``exim_path``: Exim re-executes itself to send a bounce).

Routing (``exim_config``):

- ``acme.test`` is relayed (``R=relay T=remote_smtp``) to the downstream SMTP
  server the test passes (aiosmtpd); every other remote domain goes there too
  (bounces to ``partner.test`` senders), but only ``acme.test`` may be relayed to.
- ``example.com`` is local: ``alice`` and ``test_user`` are mailboxes
  (``R=local_user T=mail_spool``); aliases: ``postmaster`` -> alice,
  ``devnull`` -> ``:blackhole:``, ``archive`` -> ``/dev/null``, ``ticket`` ->
  ``|/bin/cat``, ``gone`` -> ``:fail: This person left``.
- ``virtual.test``: ``carol`` (``R=virtual_user T=dovecot_virtual_delivery``, a maildir).
- RCPT ACL: ``silent@`` denied without a message, ``greylist@`` deferred with
  ``451 4.7.1``, unknown local users refused by ``verify = recipient``, other
  domains ``relay not permitted``; AUTH PLAIN ``submit``/``secret`` is offered.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXIM_ROOT = Path(os.environ.get("EXIM_ROOT", ROOT / ".venv" / "exim4"))
EXIM_BINARY = EXIM_ROOT / "usr" / "sbin" / "exim4"
EXIM_USER = "Debian-exim"  # compiled into Debian's binary (EXIM_USER=ref:Debian-exim)
AUTH_USER, AUTH_PASSWORD = "submit", "secret"

# ``@NAME@`` placeholders: Exim's own syntax is full of ``$`` and braces.
EXIM_CONFIG = """\
exim_path = @EXIM@
exim_user = @USER@
exim_group = @GROUP@
never_users = root
deliver_drop_privilege = true
keep_environment =
spool_directory = @DIR@/spool
log_file_path = @DIR@/log/%slog
pid_file_path = @DIR@/spool/exim.pid
primary_hostname = gw.example.com
qualify_domain = example.com
daemon_smtp_ports = @PORT@
daemon_startup_retries = 0
local_interfaces = <; 127.0.0.1
disable_ipv6 = true
host_lookup =
rfc1413_hosts =
tls_advertise_hosts =
timezone = @TIMEZONE@
log_selector = @LOG_SELECTOR@
domainlist local_domains = example.com
domainlist virtual_domains = virtual.test
domainlist relay_to_domains = acme.test
acl_smtp_rcpt = acl_check_rcpt

begin acl

acl_check_rcpt:
  deny    local_parts = silent
  defer   local_parts = greylist
          message = 451 4.7.1 Greylisted, try again later
  deny    domains = +local_domains : +virtual_domains
          !verify = recipient
  accept  domains = +local_domains : +virtual_domains : +relay_to_domains
  deny    message = relay not permitted

begin routers

relay:
  driver = manualroute
  domains = ! +local_domains : ! +virtual_domains
  transport = remote_smtp
  route_list = * 127.0.0.1
  self = send
  no_more

aliases:
  driver = redirect
  domains = +local_domains
  data = ${lookup{$local_part}lsearch{@DIR@/aliases}}
  allow_fail
  allow_defer
  pipe_transport = address_pipe
  file_transport = address_file

local_user:
  driver = accept
  domains = +local_domains
  local_parts = alice : test_user
  transport = mail_spool

virtual_user:
  driver = accept
  domains = +virtual_domains
  local_parts = carol
  transport = dovecot_virtual_delivery

begin transports

remote_smtp:
  driver = smtp
  port = @DOWNSTREAM_PORT@
  allow_localhost
  hosts_avoid_tls = *

mail_spool:
  driver = appendfile
  file = @DIR@/mail/${local_part_data}
  user = @USER@
  mode = 0600

dovecot_virtual_delivery:
  driver = appendfile
  directory = @DIR@/mail/${domain_data}/${local_part_data}
  maildir_format
  user = @USER@

address_pipe:
  driver = pipe
  user = @USER@

address_file:
  driver = appendfile
  user = @USER@

begin retry

* * F,1h,10m

begin authenticators

plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = ${if and {{eq{$auth2}{@AUTH_USER@}}{eq{$auth3}{@AUTH_PASSWORD@}}}}
  server_set_id = $auth2
"""

ALIASES = """\
postmaster: alice
devnull: :blackhole:
archive: /dev/null
ticket: |/bin/cat
gone: :fail: This person left
"""

# The selectors real gateways turn on, so their fields are in the fixture's log.
LOG_SELECTOR = "+pid +millisec +queue_time_overall +received_recipients +sender_on_delivery +incoming_port"


class EximUnavailable(AssertionError):
    """The unpacked Exim is missing: ``./dev test`` (as root) provides it."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as() -> tuple[str, int, dict[str, Any]]:
    """The user Exim runs as, its group id and the Popen arguments that switch to it."""
    if os.geteuid() == 0:
        entry = pwd.getpwnam(EXIM_USER)
        return EXIM_USER, entry.pw_gid, {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    entry = pwd.getpwuid(os.geteuid())
    return entry.pw_name, entry.pw_gid, {}


def check_exim_available() -> None:
    """Fail (never skip) with the remedy when the unpacked Exim cannot run here."""
    if not EXIM_BINARY.is_file():
        raise EximUnavailable(f"{EXIM_BINARY} is missing: run ./dev test as root once (it unpacks exim4-daemon-light)")
    try:
        pwd.getpwnam(EXIM_USER)
    except KeyError as exc:
        raise EximUnavailable(f"the {EXIM_USER} user is missing: run ./dev test as root once (it creates it)") from exc


@dataclass
class EximServer:
    """One running Exim daemon: where it listens and where it logs."""

    port: int
    base: Path
    process: subprocess.Popen[bytes]

    @property
    def mainlog(self) -> Path:
        return self.base / "log" / "mainlog"

    def log_text(self) -> str:
        return self.mainlog.read_text(errors="replace") if self.mainlog.exists() else ""

    def wait_for_log(self, done: Callable[[str], bool], what: str, timeout: float = 20) -> str:
        """The main log once ``done(text)`` holds; fails after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_text()
            if done(text):
                return text
            if time.monotonic() > deadline or self.process.poll() is not None:
                panic = self.base / "log" / "paniclog"
                detail = panic.read_text(errors="replace") if panic.exists() else ""
                raise AssertionError(f"Exim did not log {what} in {timeout}s:\n{text[-4000:]}\n{detail}")
            time.sleep(0.05)


def _binary_for_others(base: Path) -> Path:
    """The unpacked binary if the unprivileged user can reach it (every directory above it
    searchable by others), else a copy in ``base`` (a checkout under /root is not reachable)."""
    paths = [EXIM_BINARY, *EXIM_BINARY.parents]
    if all(path.stat().st_mode & stat.S_IXOTH for path in paths) and not EXIM_BINARY.stat().st_mode & stat.S_ISUID:
        return EXIM_BINARY
    binary = base / "exim4"
    shutil.copyfile(EXIM_BINARY, binary)
    binary.chmod(0o755)  # never setuid: Exim runs as the unprivileged user only
    return binary


def _write_files(
    base: Path, port: int, downstream_port: int, user: str, group: str, timezone: str
) -> tuple[Path, Path]:
    """The configuration and the binary to start."""
    for sub in ("spool", "log", "mail"):
        (base / sub).mkdir()
    binary = _binary_for_others(base)
    (base / "aliases").write_text(ALIASES)
    config = base / "exim.conf"
    values = {
        "EXIM": str(binary),
        "DIR": str(base),
        "USER": user,
        "GROUP": group,
        "PORT": str(port),
        "DOWNSTREAM_PORT": str(downstream_port),
        "TIMEZONE": timezone,
        "LOG_SELECTOR": LOG_SELECTOR,
        "AUTH_USER": AUTH_USER,
        "AUTH_PASSWORD": AUTH_PASSWORD,
    }
    text = EXIM_CONFIG
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    config.write_text(text)
    return config, binary


def _listening(mainlog: Path) -> bool:
    """The daemon logs "listening for SMTP on ..." once it has bound its port (a probe
    connection would leave a line of its own in the log)."""
    return mainlog.exists() and "listening for SMTP on" in mainlog.read_text(errors="replace")


@contextlib.contextmanager
def exim_server(downstream_port: int, *, timezone: str = "UTC") -> Iterator[EximServer]:
    """Exim listening on 127.0.0.1 (a free port), relaying ``acme.test`` to ``downstream_port``."""
    check_exim_available()
    user, gid, drop = _run_as()
    group = grp.getgrgid(gid).gr_name
    base = Path(tempfile.mkdtemp(prefix="connector-exim-", dir="/tmp"))
    base.chmod(0o755)
    process: subprocess.Popen[bytes] | None = None
    try:
        for _attempt in range(5):  # another test run may take the port between probe and bind
            port = _free_port()
            for leftover in ("spool", "log", "mail"):
                shutil.rmtree(base / leftover, ignore_errors=True)
            config, binary = _write_files(base, port, downstream_port, user, group, timezone)
            if os.geteuid() == 0:
                for path in (base / "spool", base / "log", base / "mail"):
                    os.chown(path, drop["user"], gid)
            # -bdf: the daemon in the foreground, so this Popen owns it; its own session so
            # the delivery processes it forks are stopped with it.
            process = subprocess.Popen(
                [binary, "-C", config, "-bdf"],
                stdout=subprocess.DEVNULL,
                stderr=open(base / "stderr.log", "ab"),  # noqa: SIM115 - the child owns it
                start_new_session=True,
                **drop,
            )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and process.poll() is None and not _listening(base / "log" / "mainlog"):
                time.sleep(0.05)
            if process.poll() is None:
                break
        assert process is not None and process.poll() is None, (base / "stderr.log").read_text(errors="replace")
        yield EximServer(port, base, process)
    finally:
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)  # the daemon's own group: it and its children
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        shutil.rmtree(base, ignore_errors=True)
