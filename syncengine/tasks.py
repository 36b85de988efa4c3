"""django-q2 entry points: thin wrappers with primitive arguments (logic in the modules they call)."""
from __future__ import annotations

from syncengine import housekeeping, jobs


def process_inbound_event(event_id: int) -> str | None:
    """Process one stored inbound event (queued by the webhook view, a retry or a replay)."""
    return jobs.process_inbound_event(event_id)


def recover_stalled_events() -> int:
    """Queue events left behind by a lost enqueue, a lost schedule or a dead worker."""
    return housekeeping.recover_stalled_events()


def prune_history() -> tuple[int, int]:
    """Delete finished events and calls older than the retention period (daily)."""
    return housekeeping.prune_history()


def reconcile() -> dict:
    """Compare open linked pairs with both APIs and repair what missed webhooks left behind."""
    from syncengine import reconcile as sweep

    return sweep.run().as_dict()


def run_backfill(backfill_id: int) -> str:
    """Do a started backfill's items from where it stopped (``syncengine.backfill``)."""
    from syncengine import backfill

    return backfill.run(backfill_id)


def poll_zenduty() -> dict:
    """Read linked open incidents' notes and priorities (Zenduty sends no webhook for them)."""
    from syncengine import polling

    return polling.run().as_dict()


def sweep_xurrent_notes() -> dict:
    """Copy Xurrent notes whose request.note-added webhook was lost (a budgeted read of open pairs' notes)."""
    from syncengine import note_sweep

    return note_sweep.run().as_dict()


def roll_up_activity() -> int:
    """Recompute the dashboard's hourly roll-up of the last days (every 10 minutes)."""
    from syncengine import dashboard

    return dashboard.roll_up()
