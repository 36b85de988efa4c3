"""The scheduled refresh of the teams' priorities (``integrations.tasks.refresh_team_priorities``).

Reads each team an integration names, least recently read first, within each
Zenduty account's budget, and keeps what it read as the team's snapshot
(``integrations.team_priorities``), which the integration pages compare the
mapping with.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from connections import errors
from connections.models import ZendutyAccount
from integrations import services
from integrations.models import OutgoingIntegration, TeamPriorities
from integrations.team_priorities import record, record_failure, take_read

logger = logging.getLogger("integrations.priority_refresh")


@dataclass
class RefreshReport:
    """What one refresh did: teams read, teams whose read failed, teams left for the next run."""

    read: int = 0
    failed: int = 0
    left: int = 0
    stopped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"read": self.read, "failed": self.failed, "left": self.left, "stopped": self.stopped}


def _teams_to_refresh() -> list[tuple[int, str, datetime | None]]:
    """(account id, team id, last read) of every team an integration names, least recently read first."""
    teams = set(OutgoingIntegration.objects.values_list("zenduty_account_id", "zenduty_team_id"))
    read = {(a, t): at for a, t, at in TeamPriorities.objects.values_list("zenduty_account_id", "team_id",
                                                                           "read_at")}
    never = timezone.make_aware(datetime.min.replace(year=1970))
    return sorted(((a, t, read.get((a, t))) for a, t in teams), key=lambda x: (x[2] or never, x[0], x[1]))


def refresh() -> RefreshReport:
    """Read the priorities of every team an integration names, least recently read first, within
    each account's budget; an account whose budget is spent (or that answers 429) waits for the
    next run. Never raises for an API's error: a failed read is recorded on the team's snapshot."""
    report = RefreshReport()
    accounts = {a.pk: a for a in ZendutyAccount.objects.all()}
    spent: set[int] = set()
    for account_id, team_id, _ in _teams_to_refresh():
        account = accounts.get(account_id)
        if account is None:
            continue
        if account_id in spent:
            report.left += 1
            continue
        try:
            take_read(account)
            with services.zenduty_client(account) as client:
                listed = client.list_priorities(team_id)
        except errors.RateLimitedError as exc:
            spent.add(account_id)
            report.left += 1
            report.stopped.append(f"Zenduty account '{account}': {exc.message}")
            logger.info("integrations.priorities.budget-spent account=%s", account_id)
            continue
        except errors.ApiError as exc:
            report.failed += 1
            record_failure(account, team_id, services.describe_api_error(exc, "read the team's priorities in Zenduty",
                                                                         account))
            continue
        record(account, team_id, services.priority_options(listed))
        report.read += 1
    return report
