"""Answers from the mail server's directory."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class DirectoryObjectKind(StrEnum):
    """What a directory object is; only ``user`` can ever become a user."""

    USER = "user"
    GROUP = "group"
    CONTACT = "contact"
    SHARED_MAILBOX = "shared_mailbox"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    """One directory object that owns an address (as primary or alias).

    Addresses are already normalised (lower case, IDNA domain) by the adapter.
    """

    kind: DirectoryObjectKind
    dn: str
    primary_address: str | None
    aliases: tuple[str, ...] = ()
    display_name: str | None = None
    enabled: bool = True
    external_id: str | None = None
    attributes: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Directory values come from strangers and end up in the target's 255-character columns.
        object.__setattr__(self, "display_name", clean_text(self.display_name))
        object.__setattr__(self, "external_id", clean_text(self.external_id))

    @property
    def is_user(self) -> bool:
        return self.kind is DirectoryObjectKind.USER

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind.value,
            "dn": self.dn,
            "primary_address": self.primary_address,
            "aliases": list(self.aliases),
            "display_name": self.display_name,
            "enabled": self.enabled,
        }


TEXT_LIMIT = 255  # the targets' limit for display names and external ids


def clean_text(value: str | None) -> str | None:
    """A directory text value fit for the target: no control characters, at most ``TEXT_LIMIT`` characters."""
    if value is None:
        return None
    cleaned = "".join(ch for ch in value if ch.isprintable() or ch == " ").strip()
    return cleaned[:TEXT_LIMIT] or None


# ``None`` in a lookup result means "the directory has no object with this address".
DirectoryAnswer = DirectoryEntry | None
