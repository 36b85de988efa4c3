"""django-q2 entry point of the alerts (logic in ``alerts.services``)."""
from __future__ import annotations


def evaluate() -> dict:
    """Check every alert condition, mail integration admins about those raised or cleared (scheduled)."""
    from alerts import services

    return services.evaluate_all()
