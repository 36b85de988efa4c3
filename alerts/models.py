"""Alert conditions: one row per condition that has been raised, so each is mailed once and once cleared."""
from __future__ import annotations

from django.db import models
from django.utils import timezone


class Alert(models.Model):
    """A condition integration admins were told about (``alerts.services``).

    ``key`` names the condition and what it is about, e.g.
    ``integration:3:failing`` or ``webhook:tenant:1:request.update``. While
    ``cleared_at`` is empty the condition holds and nothing more is sent; when
    it clears, ``cleared_at`` is set and one more mail says so; should it
    return, the same row is raised again.
    """

    key = models.CharField(max_length=200, unique=True)
    subject = models.CharField(max_length=255)
    detail = models.TextField(blank=True, default="")
    raised_at = models.DateTimeField(default=timezone.now)
    cleared_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-raised_at"]

    def __str__(self) -> str:
        return self.subject

    @property
    def active(self) -> bool:
        return self.cleared_at is None
