"""django-q2 configuration, set explicitly (team convention: finite attempts, timeout below retry).

django-q2's defaults retry a failing task forever (``max_attempts=0``) and warn
when ``timeout`` is not below ``retry``. We keep attempts finite and do our own
retries with backoff inside the sync engine, where they are recorded in our
history tables; django-q2's tables only move work.
"""


def build_q_cluster(*, redis_url: str | None, sync: bool, workers: int, timeout: int = 120,
                    retry: int = 180) -> dict:
    """Return the ``Q_CLUSTER`` dict for the given broker choice.

    ``timeout`` and ``retry`` (``Q_TIMEOUT`` / ``Q_RETRY``) are shortened by the
    reliability tests only; ``retry`` must stay above ``timeout``.
    """
    conf = {
        "name": "portal",
        "workers": workers,
        # A job talks to at most two APIs with 10 s timeouts and a few bounded
        # in-process retries; 120 s is generous and still well below `retry`.
        "timeout": timeout,
        "retry": retry,
        "max_attempts": 3,
        "ack_failures": True,
        "catch_up": False,
        "save_limit": 500,
        "sync": sync,
        "label": "Task queue",
        "poll": 0.5,
    }
    if redis_url:
        conf["redis"] = redis_url
    else:
        conf["orm"] = "default"
    return conf
