"""The job runner: processing of stored inbound events (the django-q2 jobs call these).

``process_inbound_event`` claims an event with a conditional UPDATE, so a
second or concurrent run of the same job does nothing; it then dispatches on
(source, event type) (``syncengine.dispatch``) with the event's integration
and id set as the context of every outbound call (``connections.attribution``).

Outcomes:

* a handler returns processed / ignored with a sentence saying why;
* ``RetryableError`` (rate limit, 5xx, network) → retry_scheduled, run again
  later by a django-q2 ONCE schedule with exponential backoff that honours
  ``retry_after``; after ``MAX_ATTEMPTS`` → failed. A wait for the portal's
  own rate-limit budget is no attempt, and lasts until the event's turn
  (``connections.budget``). ``manage.py qcluster`` (syncengine's) starts due
  schedules every ``Q_SCHEDULE_LOOK_SECONDS`` (:func:`keep_starting_due_schedules`);
* ``PermanentError`` or a message that cannot be acted on → failed.

Stalled events and old history are the business of ``syncengine.housekeeping``.
"""
from __future__ import annotations

import logging
import os
import random
import time
import uuid
from datetime import timedelta
from typing import Callable

from django.db import close_old_connections, transaction
from django.db.models import F, Q
from django.utils import timezone
from django_q.brokers import Broker, get_broker
from django_q.models import Schedule
from django_q.tasks import async_task, schedule

from connections import errors, secrets
from connections.attribution import sync_context
from connections.xurrent.webhooks import VERIFY_EVENT
from integrations.services import describe_api_error
from syncengine import pairs
from syncengine.dispatch import dispatch
from syncengine.models import CLAIMABLE, REPLAYABLE, EventStatus, InboundEvent, LinkedPair, Source
from syncengine.outcomes import EventError, Outcome
from syncengine.pairs import PairBusy
from syncengine.verification import without_verification_code

logger = logging.getLogger("syncengine.jobs")

TASK = "syncengine.tasks.process_inbound_event"
MAX_ATTEMPTS = 5
RETRY_BASE_SECONDS = 30
RETRY_MAX_SECONDS = 3600
# Up to this share is added to each delay, so that events rate-limited together
# do not all come back in the same second.
RETRY_JITTER = 0.1
# While the schedule look keeps failing (the database away), it says so at most this often.
LOOK_FAILURE_LOG_SECONDS = 60
# After a look that could not start what was due (django-q2 refused a schedule: its whole look is
# one transaction, so nothing started), the next look comes this much later: django-q2's own pace,
# rather than the same failure and its traceback every second.
STUCK_LOOK_SECONDS = 30.0
# An event whose pair another event holds waits in place this long for the lease before
# it schedules a retry: a scheduled retry starts only when a cluster next looks for due
# schedules (every Q_SCHEDULE_LOOK_SECONDS with the portal's qcluster, every 30 s with
# django-q2's own), and the wait is no failed attempt anyway. Two events of one pair close together are
# common (Xurrent sends request.update and request.status-changed for one status change;
# an incident acknowledged and resolved within a second), and the holder is usually done
# in well under a second.
BUSY_WAIT_SECONDS = 5.0
BUSY_POLL_SECONDS = 0.1

MAX_TEXT = 2000
REPLAY_PREFIX = "Replay requested"


# -- queueing ------------------------------------------------------------------------------------
_brokers: dict[int, Broker] = {}


def _broker() -> Broker:
    """This process's django-q2 broker. ``async_task`` without one builds a new broker per
    call: with Redis a new connection pool, so a new connection for every job queued. Kept
    per process id: a broker made before a fork (qcluster's workers) is not shared."""
    pid = os.getpid()
    broker = _brokers.get(pid)
    if broker is None:
        _brokers.clear()
        broker = _brokers[pid] = get_broker()
    return broker


def enqueue(event_id: int) -> None:
    """Queue the processing of an event. A broker failure is logged, not raised:
    the event stays "received" and :func:`recover_stalled_events` queues it later."""
    try:
        async_task(TASK, event_id, task_name=f"syncengine-event-{event_id}-{uuid.uuid4().hex[:8]}",
                   broker=_broker())
    except Exception:  # noqa: BLE001 - the delivery is stored; the sweeper retries
        logger.exception("syncengine.enqueue-failed event=%s", event_id)


def start_due_schedules(broker: Broker | None = None) -> bool:
    """Start the jobs of schedules that are due (django-q2's own look), if any is; returns whether one was.

    The cheap read first: django-q2's look is a write transaction (it takes
    SQLite's write lock) even when nothing is due. It counts only the
    schedules django-q2's look would start: this cluster's, and those of no
    cluster when this is the default one (a schedule left for another
    cluster would otherwise be "due" at every look).
    """
    from django_q.conf import Conf
    from django_q.scheduler import scheduler  # it sets Django up when imported before the apps are ready

    mine = Q(cluster=Conf.CLUSTER_NAME)
    if Conf.CLUSTER_NAME == Conf.PREFIX:
        mine |= Q(cluster__isnull=True)
    due = Schedule.objects.filter(mine, next_run__lt=timezone.now()).exclude(repeats=0)
    due_ids = list(due.values_list("pk", flat=True)[:500])
    if not due_ids:
        return False
    scheduler(broker=broker or _broker())
    stuck = list(Schedule.objects.filter(pk__in=due_ids, next_run__lt=timezone.now()).exclude(repeats=0)
                 .values_list("name", flat=True)[:5])
    if stuck:
        raise SchedulesStuck(stuck)
    return True


class SchedulesStuck(Exception):
    """Schedules that were due are still due after django-q2's look: it could not start them (its log
    says why, e.g. arguments that do not parse)."""

    def __init__(self, names: list[str]):
        self.names = names
        super().__init__(f"still due after a look, not started: {', '.join(map(str, names))}")


def keep_starting_due_schedules(running: Callable[[], bool], *, every: float,
                                sleep: Callable[[float], None] = time.sleep,
                                clock: Callable[[], float] = time.monotonic) -> None:
    """:func:`start_due_schedules` every ``every`` seconds while ``running()`` (``manage.py qcluster``).

    A look that could not start what was due (:class:`SchedulesStuck`) is
    followed by the next one ``STUCK_LOOK_SECONDS`` later. A failed look (the
    database away) is tried again at the next; the first look that works
    again says so. Either trouble is said when it starts and then at most
    every ``LOOK_FAILURE_LOG_SECONDS`` while it lasts (a database away for
    minutes is not a traceback a second).
    """
    failing_since = said_at = None

    def time_to_say() -> bool:
        nonlocal said_at
        now = clock()
        if said_at is None or now - said_at >= LOOK_FAILURE_LOG_SECONDS:
            said_at = now
            return True
        return False

    while running():
        wait = every
        try:
            start_due_schedules()
        except SchedulesStuck as stuck:
            wait = max(every, STUCK_LOOK_SECONDS)
            if time_to_say():
                logger.warning("syncengine.schedule-look-stuck %s; looking again in %.0f s", stuck, wait)
        except Exception:  # noqa: BLE001 - the next look tries again; the cluster goes on meanwhile
            if failing_since is None:
                failing_since = clock()
            if time_to_say():
                logger.exception("syncengine.schedule-look-failed for %.0f s", clock() - failing_since)
        else:
            if failing_since is not None:
                logger.warning("syncengine.schedule-look-recovered after %.0f s", clock() - failing_since)
                failing_since = said_at = None
        finally:
            close_old_connections()
        sleep(wait)


def replay_event(event_id: int, *, by: str = "") -> bool:
    """Queue a failed, ignored or processed event again, with a fresh attempt count.

    Rejected events are never replayed (their signature did not hold), nor
    events already waiting or running. Returns whether the event was queued.
    """
    who = f" by {by}" if by else ""
    before = InboundEvent.objects.filter(pk=event_id, status__in=REPLAYABLE).values("status", "reason").first()
    if before is None:
        return False
    # The outcome before the replay stays readable: the replay's own outcome is added to it (_finish).
    was = f"before it: {EventStatus(before['status']).label.lower()}, {before['reason']}".rstrip(". ")
    updated = InboundEvent.objects.filter(pk=event_id, status=before["status"]).update(
        # next_attempt_at: "due since", for recover_stalled_events.
        status=EventStatus.RECEIVED, attempts=0, next_attempt_at=timezone.now(), processed_at=None,
        claimed_at=None,
        reason=clean(f"{REPLAY_PREFIX}{who} at {timezone.now():%Y-%m-%d %H:%M:%S} UTC ({was})."))
    if updated:
        transaction.on_commit(lambda: enqueue(event_id))
        logger.info("syncengine.replay event=%s%s", event_id, who)
    return bool(updated)


def retry_delay(attempt: int, retry_after: float | None = None) -> float:
    """Seconds before attempt ``attempt + 1``: 30 s doubling per attempt (cap 1 h),
    plus jitter, and never less than the API's ``retry_after``."""
    delay = min(RETRY_BASE_SECONDS * 2 ** max(attempt - 1, 0), RETRY_MAX_SECONDS)
    delay *= 1 + random.uniform(0, RETRY_JITTER)
    if retry_after:
        delay = max(delay, float(retry_after))
    return delay


# -- the job ---------------------------------------------------------------------------------------
def process_inbound_event(event_id: int) -> str | None:
    """Process one stored event; safe to call twice or concurrently.

    Returns the status it left the event in, or None when there was nothing
    to claim (already done, running elsewhere, deleted).
    """
    now = timezone.now()
    claimed = InboundEvent.objects.filter(pk=event_id, status__in=CLAIMABLE).update(
        status=EventStatus.PROCESSING, attempts=F("attempts") + 1, claimed_at=now, next_attempt_at=None)
    if not claimed:
        logger.info("syncengine.process.not-claimed event=%s", event_id)
        return None
    event = InboundEvent.objects.select_related("integration__tenant").get(pk=event_id)
    with sync_context(integration_id=event.integration_id, inbound_event_id=event.pk):
        try:
            outcome = _dispatch_when_pair_free(event)
        except errors.RetryableError as exc:
            return _retry_or_fail(event, exc)
        except errors.ApiError as exc:  # permanent: retrying cannot help
            return _finish(event, EventStatus.FAILED, describe_api_error(exc, _action(event)), error=str(exc))
        except EventError as exc:
            return _finish(event, EventStatus.FAILED, str(exc), error=str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug must not leave the event "processing"
            logger.exception("syncengine.process.crashed event=%s", event.pk)
            message = f"Unexpected error ({type(exc).__name__}); see the worker log."
            return _finish(event, EventStatus.FAILED, message, error=message)
    return _finish(event, outcome.status, outcome.reason)


def _dispatch_when_pair_free(event: InboundEvent) -> Outcome:
    """:func:`dispatch`; when the pair is busy, again once its lease is free, for up to ``BUSY_WAIT_SECONDS``.

    Raises :class:`PairBusy` when the other event still holds the pair by then
    (a slow call, or a worker that died holding it): the retry is scheduled.
    """
    deadline = time.monotonic() + BUSY_WAIT_SECONDS
    while True:
        try:
            return dispatch(event)
        except PairBusy as exc:
            if not _wait_for_lease(exc.pair_id, deadline):
                raise


def _wait_for_lease(pair_id: int, deadline: float) -> bool:
    """Wait until the pair's lease is given back or runs out; False when ``deadline`` comes first."""
    while time.monotonic() + BUSY_POLL_SECONDS < deadline:
        time.sleep(BUSY_POLL_SECONDS)
        if not LinkedPair.objects.filter(pk=pair_id, lease_until__gt=timezone.now()).exists():
            return True
    return False


def _finish(event: InboundEvent, status: str, reason: str, *, error: str | None = None) -> str:
    if event.reason.startswith(REPLAY_PREFIX):  # what the event did before the replay stays on record
        reason = f"{reason} — {event.reason}"
    fields = {"status": status, "reason": clean(reason), "processed_at": timezone.now(),
              **without_verification_code(event)}
    if error is not None:
        fields["last_error"] = clean(error)
    finished = InboundEvent.objects.filter(pk=event.pk, status=EventStatus.PROCESSING).update(**fields)
    if finished and status == EventStatus.FAILED:
        # A pair this event claimed would otherwise say "Creating the counterpart" for ever.
        pair_id = InboundEvent.objects.filter(pk=event.pk).values_list("pair_id", flat=True).first()
        pairs.give_up_claim(pair_id, fields["reason"])
    log = logger.warning if status == EventStatus.FAILED else logger.info
    log("syncengine.process.%s event=%s %s %s: %s", status, event.pk, event.source, event.event_type, reason)
    return status


def _waits_its_turn(exc: errors.RetryableError) -> bool:
    """Nothing was sent: the portal's own share of the API's rate limit (``connections.budget``), or
    the last answer's ``x-ratelimit-remaining: 0``, said when the call may go. Such a wait is no failed
    attempt. Counted as one, a backlog of 200 incidents (bench/backlog.py) ended with 50 events
    "given up" after five rounds of 30 Zenduty reads a minute, none of them ever refused by Zenduty."""
    return isinstance(exc, errors.RateLimitedError) and exc.status is None and exc.retry_after is not None


def _retry_or_fail(event: InboundEvent, exc: errors.RetryableError) -> str:
    attempts = event.attempts
    # Waiting for another event of the same pair, or for the rate limit's next free slot, is no
    # failed attempt: it ends when that event does (or its lease runs out), or when the slot comes.
    waiting = isinstance(exc, PairBusy) or _waits_its_turn(exc)
    if waiting:
        attempts -= 1
        InboundEvent.objects.filter(pk=event.pk).update(attempts=attempts)
    if attempts >= MAX_ATTEMPTS:
        return _finish(event, EventStatus.FAILED,
                       f"Gave up after {attempts} attempts. {describe_api_error(exc, _action(event))}",
                       error=str(exc))
    delay = exc.retry_after if waiting else retry_delay(attempts, getattr(exc, "retry_after", None))
    next_run = timezone.now() + timedelta(seconds=delay)
    if isinstance(exc, PairBusy):
        why = exc.message
    elif waiting:
        why = f"Not sent yet: {exc.message.rstrip('.')}."
    else:
        why = describe_api_error(exc, _action(event))
    reason = (f"Attempt {attempts} of {MAX_ATTEMPTS}: {why} "
              f"Next attempt in {delay:.0f} s, at {next_run:%H:%M:%S} UTC.")
    with transaction.atomic():
        updated = InboundEvent.objects.filter(pk=event.pk, status=EventStatus.PROCESSING).update(
            status=EventStatus.RETRY_SCHEDULED, next_attempt_at=next_run, reason=clean(reason),
            last_error=clean(str(exc)))
        if updated:
            schedule(TASK, event.pk, schedule_type=Schedule.ONCE, next_run=next_run, repeats=-1,
                     name=f"syncengine event {event.pk} attempt {attempts + 1} ({uuid.uuid4().hex[:6]})")
    logger.info("syncengine.process.retry event=%s attempt=%s in %.0fs: %s", event.pk, attempts, delay, exc)
    return EventStatus.RETRY_SCHEDULED


def _action(event: InboundEvent) -> str:
    """What the job was doing, completing "Could not …"."""
    if event.source == Source.XURRENT and event.event_type == VERIFY_EVENT:
        return "answer Xurrent's webhook verification"
    return f"process the {Source(event.source).label} '{event.event_type}' event"



def clean(text: str) -> str:
    """``text`` fit for the history: known secrets redacted, at most ``MAX_TEXT`` characters."""
    return secrets.redact(text or "")[:MAX_TEXT]
