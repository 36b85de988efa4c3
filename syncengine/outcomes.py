"""What a handler returns or raises about an event (shared by the job runner and the flows)."""
from __future__ import annotations

from dataclasses import dataclass

# The reason of an event a disabled integration received (stored only). The note sweep recognises it: a
# note-added ignored this way is copied once the integration is enabled again.
INTEGRATION_DISABLED = "The integration is disabled; the event was stored but not processed."


class EventError(Exception):
    """The stored message cannot be acted on (a permanent failure of this event)."""


@dataclass(frozen=True)
class Outcome:
    """How a handler left the event."""

    status: str
    reason: str
