"""The Zenduty team priorities that integration pages compare custom mappings with.

A team's priorities change in Zenduty (added, deleted, renamed) without any
webhook (Zenduty's outgoing webhook carries incident status only). Integration
pages must not ask Zenduty on every view, so the portal keeps a snapshot per
team (:class:`integrations.models.TeamPriorities`), written

* by the scheduled job (``integrations.priority_refresh``, every
  ``ZENDUTY_PRIORITY_REFRESH_MINUTES``), and
* whenever the integration form reads the priorities live (``integrations.services``).

Every read of a team's priorities takes a slot from the account's shared call
budget (``connections.budget``, one row per account shared by every process)
first. Zenduty documents no limit for these reads
(https://zenduty.com/docs/rate-limits names incident, alert and on-call calls);
its limits are per account, so the portal keeps them few:
``ZENDUTY_PRIORITY_READS_PER_SECOND`` / ``_PER_MINUTE``, apart from the
incident reads the sync needs.
"""
from __future__ import annotations

from typing import Iterable

from django.conf import settings
from django.utils import timezone

from connections import budget
from connections.models import ZendutyAccount
from integrations.models import OutgoingIntegration, TeamPriorities
from utilities.schedules import schedule_aligner



def budget_key(account: ZendutyAccount) -> str:
    """The budget row of an account's priority reads (beside the client's incident rows)."""
    return f"zenduty:account:{account.pk}:priority-reads"


def limits() -> tuple[budget.Limit, ...]:
    return (budget.Limit(settings.ZENDUTY_PRIORITY_READS_PER_SECOND, 1),
            budget.Limit(settings.ZENDUTY_PRIORITY_READS_PER_MINUTE, 60))


def take_read(account: ZendutyAccount, *, max_wait: float | None = None) -> None:
    """Take a slot for one read of a team's priorities, waiting up to ``max_wait`` seconds.

    :raises errors.RateLimitedError: when the account's budget has no slot that soon.
    """
    wait = settings.EXTERNAL_API_MAX_INLINE_WAIT if max_wait is None else max_wait
    budget.take(budget_key(account), limits(), max_wait=wait, service="zenduty",
                what="reading a team's priorities")


# -- the snapshot -------------------------------------------------------------------------------
def record(account: ZendutyAccount, team_id: str, priorities: Iterable) -> TeamPriorities:
    """Store what Zenduty listed now (objects with ``id`` and ``name``, in Zenduty's order)."""
    listed = [{"id": str(p.id), "name": str(p.name)} for p in priorities]
    snapshot, _ = TeamPriorities.objects.update_or_create(
        zenduty_account=account, team_id=str(team_id),
        defaults={"priorities": listed, "read_at": timezone.now(), "error": "", "error_at": None})
    return snapshot


def record_failure(account: ZendutyAccount, team_id: str, message: str) -> None:
    """Note a failed refresh; the priorities read before stay as they were."""
    TeamPriorities.objects.update_or_create(zenduty_account=account, team_id=str(team_id),
                                            defaults={"error": message[:1000], "error_at": timezone.now()})


def snapshot_of(integration: OutgoingIntegration) -> TeamPriorities | None:
    return TeamPriorities.objects.filter(zenduty_account_id=integration.zenduty_account_id,
                                         team_id=integration.zenduty_team_id).first()


# -- the scheduled refresh ----------------------------------------------------------------------
SCHEDULE_NAME = "integrations: refresh team priorities"  # created by migration 0005


align_schedule = schedule_aligner(SCHEDULE_NAME, "ZENDUTY_PRIORITY_REFRESH_MINUTES")
