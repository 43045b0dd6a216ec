"""One plain sentence per reason code: what a person reads next to ``dictionary_attack``.

The single source of the sentences: the HTML pages (legend and tooltips) use it,
and the text report and ``explain`` can use it too. Pure: a mapping and a lookup.
The codes are the stable strings of ``connector.domain.decisions.Reason``; their
precise meaning, and the order they are checked in, is in docs/policies.md.
"""

from __future__ import annotations

from connector.domain.decisions import Reason

R = Reason
REASON_SENTENCES: dict[str, str] = {
    R.QUALIFIED: "Enough mail reached this address to show it is in use, and the mail directory has it as an "
    "enabled user, so it was created.",
    R.BELOW_THRESHOLD: "Not enough mail has reached this address yet to show it is in use; it is created once "
    "enough has.",
    R.NO_SMTP_ACCEPT: "The mail server has not accepted mail for this address yet, so it waits.",
    R.REJECTED_BY_SERVER: "The mail server refused mail for this address, so it is not a mailbox and was not created.",
    R.ALREADY_KNOWN: "This address is already a user in the compliance directory: nothing to create.",
    R.ALIAS_OF: "This address is already an alias of a user in the compliance directory: nothing to create.",
    R.NOT_IN_DIRECTORY: "The mail directory has no entry with this address, so no user was created.",
    R.NOT_A_USER: "The mail directory entry is not a person's account (a group, a contact, a shared mailbox ...), "
    "so no user was created.",
    R.DISABLED_IN_DIRECTORY: "The account is disabled in the mail directory, so no user was created.",
    R.DOMAIN_NOT_MANAGED: "The connector is not set up to create users for this domain.",
    R.METHOD_OFF: "User creation is switched off for this domain (method: off).",
    R.DIRECTORY_UNAVAILABLE: "The mail directory could not be asked, so the decision waits for the next run.",
    R.TARGET_UNAVAILABLE: "The compliance directory could not be reached, so the creation is tried again next run.",
    R.TARGET_REJECTED: "The compliance directory refused this user; it is sent again only after its configuration "
    "or the connector changes.",
    R.EXCLUDED_ADDRESS: "Addresses like this one (postmaster, abuse, noreply, bounce addresses ...) are never "
    "created automatically.",
    R.BLOCKED: "A person blocked this address (connector block), so it is never created automatically.",
    R.DENIED: "A person denied this creation in the review queue; the address is blocked from now on.",
    R.CATCH_ALL_SUSPENDED: "The domain's mail server accepts mail for any address, so an accepted message proves "
    "nothing and creation waits until that changes.",
    R.CATCH_ALL_UNKNOWN: "It is not known whether the domain's mail server accepts mail for any address, so "
    "automatic creation waits.",
    R.DICTIONARY_ATTACK: "Many unknown addresses at this domain in a short time looked like a dictionary attack, "
    "so none were created.",
    R.LIMIT_REACHED: "Creating it would pass a creation limit, so it waits for a person to approve or deny it.",
    R.AWAITING_APPROVAL: "Every creation waits for a person to approve or deny it (safety mode: approve).",
    R.NOT_IN_PLAN: "It was not in the plan being applied, so it waits for a person to approve or deny it.",
}


def reason_sentence(code: str) -> str:
    """The sentence for ``code``; a code this version does not know (a newer report) says so plainly."""
    return REASON_SENTENCES.get(code) or f"Reason {code!r} (not described by this version of the connector)."
