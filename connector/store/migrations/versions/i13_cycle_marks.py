"""cycle cost independent of history: due marks, reconcile marks and a smaller event log

Three parts, each its own function below (filled by the work on issue 13):
- ``_upgrade_due``: what ingest keeps so a cycle finds due addresses and catch-all tallies
  without scanning every evidence row;
- ``_upgrade_reconcile``: what lets reconcile plan only the managed users that may have changed;
- ``_upgrade_event_log``: the event log's layout on disk.

Revision ID: i13_cycle_marks
Revises: i13_event_log
Create Date: 2026-12-02
"""

from __future__ import annotations

revision = "i13_cycle_marks"
down_revision = "i13_event_log"
branch_labels = None
depends_on = None


# --- due marks and catch-all tallies (evidence) -------------------------------------------------
def _upgrade_due() -> None:
    pass


def _downgrade_due() -> None:
    pass


# --- reconcile marks (managed users) --------------------------------------------------------------
def _upgrade_reconcile() -> None:
    pass


def _downgrade_reconcile() -> None:
    pass


# --- event log layout ------------------------------------------------------------------------------
def _upgrade_event_log() -> None:
    pass


def _downgrade_event_log() -> None:
    pass


def upgrade() -> None:
    _upgrade_due()
    _upgrade_reconcile()
    _upgrade_event_log()


def downgrade() -> None:
    _downgrade_event_log()
    _downgrade_reconcile()
    _downgrade_due()
