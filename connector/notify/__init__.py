"""Notifications at once: a webhook and/or mail when a run finds an attack, a reached limit,
a quarantined target, an unreachable directory or a source in error (docs/operations.md#notifications)."""
