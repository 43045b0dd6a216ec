"""What a delivery event may carry into the state database.

An event's text comes from a log line a stranger shaped: the sender, the
message-id, the downstream's reply. Before ingest stores anything of it (the
event log, the evidence, and from the evidence the decision's detail), every
text field is freed of NUL and lone surrogates (PostgreSQL refuses the first,
UTF-8 has no form for the second) and the fields that land in a ``VARCHAR``
column are cut to its width. The widths are read from the table itself, so the
check and the column cannot disagree; SQLite does not enforce them, so the
code must. The recipient has been validated before (``normalise_address``
refuses NUL, controls and lone surrogates; ``jobs/ingest.py: apply_events``
counts such a delivery invalid and stores nothing of it): it is only cut.
"""

from __future__ import annotations

import dataclasses
from operator import attrgetter
from typing import Any, cast

from sqlalchemy import String, Table

from connector.domain.events import DeliveryEvent
from connector.domain.safe_text import storable
from connector.store.models import EventLogRow

_EVENT_LOG = cast(Table, EventLogRow.__table__)


def column_width(table: Table, column: str) -> int | None:
    """The declared length of a ``VARCHAR`` column, None for unbounded text or a column the table lacks."""
    if column not in table.c:
        return None  # not stored (the narrow event log keeps no relay): nothing to fit
    kind = table.c[column].type
    return kind.length if isinstance(kind, String) else None


# Event field -> the width of the column it is stored in (None: a text column, or JSON only).
EVENT_FIELD_WIDTHS: dict[str, int | None] = {
    "host": None,
    "queue_id": None,
    "message_id": column_width(_EVENT_LOG, "message_key"),  # the key is the message-id when there is one
    "sender": column_width(_EVENT_LOG, "sender"),
    "recipient": column_width(_EVENT_LOG, "recipient"),
    "orig_recipient": None,
    "relay": 320,  # not kept in the event log (migration i13_event_log); a host name and an address fit
    "dsn": None,
    "reply": column_width(_EVENT_LOG, "reply"),
    "source": None,
    "location": column_width(_EVENT_LOG, "location"),
    "ndr_for": None,
}


_ITEMS = tuple(EVENT_FIELD_WIDTHS.items())
_BOUNDED = attrgetter(*(name for name, width in _ITEMS if width is not None))
_BOUND_WIDTHS = tuple(width for _, width in _ITEMS if width is not None)
_NARROWEST = min(_BOUND_WIDTHS)


def _fits(value: str, width: int | None) -> bool:
    if width is not None and len(value) > width:
        return False
    return "\x00" not in value and (value.isascii() or storable(value) is value)


def _plainly_fits(event: DeliveryEvent) -> bool:
    """The common case, checked at once: every text field ASCII without NUL, each within its width.

    ``_fits`` of every field would say the same (ASCII text has no surrogate); one string built
    where the field-by-field check took ten calls (8 % of ingest on the 10M-line reference log).
    """
    e = event  # every text field of ``EVENT_FIELD_WIDTHS`` (a None reads "None": ASCII, no NUL)
    text = (
        f"{e.host}{e.queue_id}{e.message_id}{e.sender}{e.recipient}{e.orig_recipient}"
        f"{e.relay}{e.dsn}{e.reply}{e.source}{e.location}{e.ndr_for}"
    )
    if not text.isascii() or "\x00" in text:
        return False
    if len(text) > _NARROWEST:  # one field may be too wide: look at the bounded ones
        for value, width in zip(_BOUNDED(event), _BOUND_WIDTHS, strict=True):
            if value is not None and len(value) > width:
                return False
    ndr = event.ndr_recipients
    return not ndr or all(_fits(recipient, None) for recipient in ndr)


def storable_event(event: DeliveryEvent) -> DeliveryEvent:
    """``event`` with every text field fit for the database; the same object when it already is."""
    if _plainly_fits(event):
        return event
    changes: dict[str, Any] = {}
    for name, width in _ITEMS:
        value = getattr(event, name)
        if value is not None and not _fits(value, width):
            changes[name] = storable(value, width)
    if event.ndr_recipients and not all(_fits(r, None) for r in event.ndr_recipients):
        changes["ndr_recipients"] = tuple(storable(r) for r in event.ndr_recipients)
    return dataclasses.replace(event, **changes) if changes else event
