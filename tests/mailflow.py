"""Build Postfix logs and Active Directory LDIF files for scenario tests.

The lines have the shapes of the real captures in tests/data/postfix/ (cleanup
message-id, qmgr from=, the relay's to=... status= line, qmgr removed).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path


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
