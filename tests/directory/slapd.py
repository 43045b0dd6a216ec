"""Start a real OpenLDAP slapd on 127.0.0.1 with its own config and database in a temp dir.

Used by the directory tests and by ``bench/directory.py``. Data is loaded
offline with ``slapadd`` (much faster than ``ldapadd``), then slapd serves it
on a free port, with ``ldap://`` (StartTLS capable) and ``ldaps://`` listeners
using a certificate signed by a CA the caller generated.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")
SUFFIX = "dc=acme,dc=com"
READER_DN = f"cn=reader,{SUFFIX}"
READER_PASSWORD = "reader-secret"
LIMITED_DN = f"cn=limited,{SUFFIX}"
LIMITED_PASSWORD = "limited-secret"

BASE_LDIF = f"""dn: {SUFFIX}
objectClass: top
objectClass: dcObject
objectClass: organization
dc: acme
o: Acme Corp

dn: {READER_DN}
objectClass: person
cn: reader
sn: reader
userPassword: {READER_PASSWORD}

dn: {LIMITED_DN}
objectClass: person
cn: limited
sn: limited
userPassword: {LIMITED_PASSWORD}

"""


def free_port() -> int:
    """A port the OS says is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class TlsFiles:
    """PEM files for slapd's TLS listeners."""

    ca: Path
    cert: Path
    key: Path


@dataclass
class Slapd:
    """A running slapd: its URLs and how to stop it."""

    process: subprocess.Popen[bytes]
    ldap_url: str
    ldaps_url: str
    workdir: Path

    def stop(self) -> None:
        """Stop slapd (idempotent)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _config(workdir: Path, tls: TlsFiles | None) -> str:
    schemas = ["core", "cosine", "inetorgperson", "nis", "misc"]
    lines = [f"include {SCHEMA_DIR / name}.schema" for name in schemas]
    lines.append(f"include {HERE / 'mail_recipient.schema'}")
    lines.append(f"include {HERE / 'ad_like.schema'}")
    lines += [
        f"pidfile {workdir / 'slapd.pid'}",
        f"modulepath {MODULE_DIR}",
        "moduleload back_mdb",
        "loglevel none",
    ]
    if tls is not None:
        lines += [
            f"TLSCACertificateFile {tls.ca}",
            f"TLSCertificateFile {tls.cert}",
            f"TLSCertificateKeyFile {tls.key}",
        ]
    lines += [
        "database mdb",
        f'suffix "{SUFFIX}"',
        f'rootdn "cn=admin,{SUFFIX}"',
        "rootpw admin-secret",
        f"directory {workdir / 'db'}",
        "maxsize 4294967296",
        "index objectClass eq",
        "index mail,mailAlternateAddress,proxyAddresses eq",
        # The limited account hits a size limit; the reader sees everything.
        f'limits dn.exact="{LIMITED_DN}" size=2',
        f'limits dn.exact="{READER_DN}" size=unlimited',
        "access to attrs=userPassword by anonymous auth by * none",
        "access to * by * read",
    ]
    return "\n".join(lines) + "\n"


def start_slapd(workdir: Path, ldif: str, tls: TlsFiles | None = None, *, port: int | None = None) -> Slapd:
    """Load ``ldif`` (after the base entries) with slapadd and start slapd on free ports."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "db").mkdir(exist_ok=True)
    config = workdir / "slapd.conf"
    config.write_text(_config(workdir, tls))
    data = workdir / "data.ldif"
    data.write_text(BASE_LDIF + ldif)
    result = subprocess.run(["slapadd", "-q", "-f", str(config), "-l", str(data)], capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"slapadd failed: {result.stderr.decode(errors='replace')[-2000:]}")
    return run_slapd(workdir, port=port, tls=tls is not None)


def run_slapd(workdir: Path, *, port: int | None = None, tls: bool = True) -> Slapd:
    """Start slapd on an already loaded ``workdir`` (also to restart one that was stopped)."""
    ldap_port = port or free_port()
    ldaps_port = free_port()
    urls = [f"ldap://127.0.0.1:{ldap_port}/"]
    if tls:
        urls.append(f"ldaps://127.0.0.1:{ldaps_port}/")
    process = subprocess.Popen(
        ["slapd", "-f", str(workdir / "slapd.conf"), "-h", " ".join(urls), "-d", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    slapd = Slapd(process, f"ldap://127.0.0.1:{ldap_port}", f"ldaps://127.0.0.1:{ldaps_port}", workdir)
    deadline = time.monotonic() + 20
    while True:
        if process.poll() is not None:
            err = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"slapd exited with {process.returncode}: {err[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", ldap_port), timeout=0.5):
                return slapd
        except OSError:
            if time.monotonic() > deadline:
                slapd.stop()
                raise RuntimeError("slapd did not start listening within 20 s") from None
            time.sleep(0.05)


def demo_ldif_for_slapd(text: str) -> str:
    """The demo LDIF made loadable: object classes added so its attributes are legal.

    The demo gives people ``mailAlternateAddress`` (``mailRecipient``, see
    mail_recipient.schema) and a ``groupOfNames`` a ``mail``; the semantics
    stay the same, only auxiliary classes are added. The base entry is dropped
    (``BASE_LDIF`` has it).
    """
    out: list[str] = []
    for record in text.strip().split("\n\n"):
        lines = [line for line in record.splitlines() if line and not line.startswith(("#", "version:"))]
        if not lines or lines[0] == f"dn: {SUFFIX}":
            continue
        names = {line.partition(":")[0].lower() for line in lines}
        if "mailalternateaddress" in names:
            lines.insert(1, "objectClass: mailRecipient")
        if "objectclass: groupofnames" in {line.lower() for line in lines} and "mail" in names:
            lines.insert(1, "objectClass: extensibleObject")
        out.append("\n".join(lines))
    return "\n\n".join(out) + "\n\n"
