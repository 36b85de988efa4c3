"""Which integration, inbound event and linked pair the current outbound calls are for.

The job runner sets it around the processing of an event, provisioning around
its calls; the history observer (``syncengine.history``) reads it to tie each
outbound call to them. It lives beside the HTTP layer that makes the calls, so
that every app can say whom its calls are for without importing the sync engine.
A ``ContextVar`` keeps concurrent jobs apart (threads in the live server,
workers with threads) without passing the event through every client call.
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Iterator


@dataclass(frozen=True)
class SyncContext:
    """Whom the calls are for. ``background``: work that can wait (the Zenduty poller, the sweeps,
    a backfill); its calls leave rate-limit slots to the jobs that come back for them
    (``connections.budget``, turns)."""

    integration_id: int | None = None
    inbound_event_id: int | None = None
    pair_id: int | None = None
    background: bool = False


_current: ContextVar[SyncContext | None] = ContextVar("call_attribution", default=None)


def current() -> SyncContext | None:
    """The context of the running job, or None outside one."""
    return _current.get()


@contextmanager
def sync_context(*, integration_id: int | None = None, inbound_event_id: int | None = None,
                 pair_id: int | None = None, background: bool = False) -> Iterator[SyncContext]:
    """Attribute the outbound calls made inside the block to an integration (and event).

    Other code may use it too, e.g. provisioning, so that its calls show up
    on the integration's history::

        with sync_context(integration_id=integration.pk):
            provision(integration.pk)
    """
    context = SyncContext(integration_id=integration_id, inbound_event_id=inbound_event_id, pair_id=pair_id,
                          background=background)
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


@contextmanager
def pair_context(pair_id: int | None) -> Iterator[SyncContext]:
    """The current context, with the calls made inside the block also tied to a linked pair."""
    outer = current() or SyncContext()
    with sync_context(integration_id=outer.integration_id, inbound_event_id=outer.inbound_event_id,
                      pair_id=pair_id, background=outer.background) as context:
        yield context
