"""``manage.py qcluster``: django-q2's cluster, whose due schedules are started within a second.

django-q2's cluster starts the jobs of due schedules only when its guard loop
looks for them: every 30 s, by a constant of its own (``Sentinel.guard`` in
django_q/cluster.py). The sync engine reschedules a job with a one-off
schedule whenever it must wait: for its turn in a rate limit
(``connections.budget``), a pair another event holds, a backoff. A retry "in
5 s" started 5-35 s later, and an event a dead worker left behind waited up to
half a minute more for the sweep that queues it again.

This command starts the same cluster and then, in its own process (which
django-q2's command leaves waiting for the cluster), runs django-q2's own look
(``django_q.scheduler.scheduler``) whenever a schedule is due, checking every
``Q_SCHEDULE_LOOK_SECONDS`` (``syncengine.jobs.keep_starting_due_schedules``).
TERM and INT stop the cluster as before, once the look under way (a write
transaction: SQLite's write lock) is over, since stopping the cluster waits
for its workers, which may be waiting for that lock; the wait between looks
is cut short.

It is the ``qcluster`` that runs because syncengine comes before django_q in
``INSTALLED_APPS`` ("to override a command, the new command must have the same
name and its app must be before the overridden command's app",
https://docs.djangoproject.com/en/5.2/howto/custom-management-commands/#overriding-commands).
"""
from __future__ import annotations

import os
import signal
import time

from django.conf import settings
from django_q.cluster import Cluster
from django_q.management.commands.qcluster import Command as DjangoQCommand

from syncengine import jobs

# Between two looks, how often the command checks whether it was asked to stop.
STOP_CHECK_SECONDS = 0.1


class Command(DjangoQCommand):
    help = "Starts the portal's django-q2 cluster (due schedules started every Q_SCHEDULE_LOOK_SECONDS)."

    def handle(self, *args, **options):
        settings.SECRET_KEY  # noqa: B018 - as django-q2's: no cluster without a signing key
        if options.get("cluster_name"):
            os.environ["Q_CLUSTER_NAME"] = options["cluster_name"]
        cluster = Cluster()  # its signal handlers stop the cluster while it starts, as django-q2's
        cluster.start()
        if options.get("run_once", False):
            cluster.stop()
            return
        stopping: list[int] = []

        def request_stop(signum, frame):
            stopping.append(signum)

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, request_stop)

        def wait(seconds: float) -> None:
            until = time.monotonic() + seconds
            while not stopping and time.monotonic() < until:
                time.sleep(min(STOP_CHECK_SECONDS, max(0.0, until - time.monotonic())))

        jobs.keep_starting_due_schedules(lambda: not stopping and cluster.sentinel.is_alive(),
                                         every=settings.Q_SCHEDULE_LOOK_SECONDS, sleep=wait)
        cluster.stop()
