"""django-q2 entry points of the integrations app: thin wrappers (logic in its modules)."""
from __future__ import annotations


def refresh_team_priorities() -> dict:
    """Read the Zenduty priorities of every team an integration names (within the account's budget)."""
    from integrations import priority_refresh

    return priority_refresh.refresh().as_dict()
