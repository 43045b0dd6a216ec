"""Which delivery events count toward a decision (pure): what ``state.event_log: decisive`` keeps.

The same conditions as the evidence fold (``connector/policy/evidence.py: record_events``):
an event is decisive when the fold would count it (a valid message, or an SMTP accept)
or when it voids the evidence (a permanent failure about the address). Deferrals,
expired messages, greylisting, failures about something else and the gateway's own
non-delivery notifications change no decision: ``decisive`` leaves them out.
"""

from __future__ import annotations

from connector.domain.events import DeliveryEvent, DeliveryStatus
from connector.policy.evidence import is_address_failure


def is_decisive(event: DeliveryEvent) -> bool:
    """True when folding ``event`` into evidence can change what is decided for its recipient."""
    if event.is_notification:
        return False
    if event.status is DeliveryStatus.SENT:
        accept = event.reply_class == 2
        valid_message = not event.null_sender and not event.probe
        return accept or valid_message
    return is_address_failure(event)
