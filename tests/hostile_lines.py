"""The log lines issue 12 lists as stopping every run, per format (shared by the property tests
and the end-to-end test): dates of year 0001 and 9999 with offsets, Unicode digits in times,
a JSON number of over 4,300 digits, lone surrogates and NUL."""

from __future__ import annotations


def tracking(
    at: str,
    event: str,
    *,
    source: str = "SMTP",
    recipient: str = "a@acme.com",
    reference: str = "",
    return_path: str = "s@x.test",
) -> str:
    """A message tracking line in the default 2013+ column order (30 columns)."""
    values = [at, "", "", "", "EX01", "", "", source, event, "1", "<m@x.test>", "n", recipient, "250 2.0.0 OK"]
    values += ["1", "1", "", reference, "subject", "s@x.test", return_path, "", "Incoming", "", "", "", ""]
    values += ["Email", "log-id", "15.02.1118.007"]
    return ",".join(values)


DELIVERY = "to=<a@acme.com>, relay=s[192.0.2.5]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 2.0.0 Ok)"
ISSUE_CASES: dict[str, list[str]] = {
    "postfix": [
        f"0001-01-01T00:00:00+01:00 mx1 postfix/smtp[1]: 4F3A2B1C9D: {DELIVERY}",
        f"9999-12-31T23:59:59-01:00 mx1 postfix/smtp[1]: 4F3A2B1C9D: {DELIVERY}",
        f"0001-01-01T00:30:00.000000+00:00 mx1 postfix/smtp[1]: 4F3A2B1C9D: {DELIVERY}",
        f"Nov 27 08:14:3\u2467 mx1 postfix/smtp[1]: 4F3A2B1C9D: {DELIVERY}",  # a circled digit: isdigit(), not int()
        f"Nov 27 08:14:\u0663\u0661 mx1 postfix/smtp[1]: 4F3A2B1C9D: {DELIVERY}",  # Arabic-Indic digits
        f"Nov 2\u2467 08:14:31 mx1 postfix/smtp[1]: 4F3A2B1C9D: {DELIVERY}",
    ],
    "exim": [
        '0001-01-01 00:00:00 +0100 1vOa2b-000Abc-Xy => a@acme.com R=r T=t H=s [192.0.2.5] C="250 OK"',
        '9999-12-31 23:59:59 -0100 1vOa2b-000Abc-Xy => a@acme.com R=r T=t H=s [192.0.2.5] C="250 OK"',
        "0001-01-01 00:00:00 1vOa2b-000Abc-Xy <= <> R=1vOa2a-000Abc-Xy U=Debian-exim P=local S=3012",
        "2026-11-27 08:14:3\u2467 1vOa2b-000Abc-Xy => a@acme.com R=r T=t",
    ],
    "exchange": [
        tracking("0001-01-01T00:00:00.000+01:00", "SEND"),
        tracking("9999-12-31T23:59:59.000-01:00", "SEND"),
        tracking("0001-01-01T00:00:00.000Z", "RECEIVE", source="DSN", reference="<o@x.test>", return_path="<>"),
        tracking("2026-11-27T08:14:3\u2467.000Z", "SEND"),
        tracking("2026-11-27T08:14:31.000Z", "SEND", recipient="a\x00@acme.com"),
    ],
    "jsonl": [
        '{"at": "0001-01-01T00:00:00+01:00", "recipient": "a@acme.com", "status": "sent"}',
        '{"at": "9999-12-31T23:59:59-01:00", "recipient": "a@acme.com", "status": "sent"}',
        '{"at": "0001-01-01T00:00:00Z", "recipient": "a@acme.com", "status": "sent"}',
        '{"at": "2026-11-27T08:14:3\u2467Z", "recipient": "a@acme.com", "status": "sent"}',
        '{"at": "2026-11-27T10:00:00Z", "recipient": "a@acme.com", "status": "sent", "size": ' + "7" * 4301 + "}",
        '{"at": "2026-11-27T10:00:00Z", "recipient": "a\\ud800@acme.com", "status": "sent"}',
        '{"at": "2026-11-27T10:00:00Z", "recipient": "a@acme.com", "status": "sent", "message_id": "<\\u0000@x>"}',
        '{"at": "2026-11-27T10:00:00Z", "recipient": "a@acme.com", "status": "sent", "ndr_recipients": ["\\udfff"]}',
    ],
}
