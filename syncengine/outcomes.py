"""What a handler returns or raises about an event (shared by the job runner and the flows)."""
from __future__ import annotations

from dataclasses import dataclass


class EventError(Exception):
    """The stored message cannot be acted on (a permanent failure of this event)."""


@dataclass(frozen=True)
class Outcome:
    """How a handler left the event."""

    status: str
    reason: str
