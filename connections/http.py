"""The one place where the portal sends HTTP to an external API.

Every client (connections/xurrent, connections/zenduty) subclasses
:class:`BaseClient`. It owns the session, the timeouts, the bounded retries
that honour ``Retry-After``, the mapping of transport failures onto
connections.errors, and the record of each outbound call. Views, tasks and
admin code never import ``requests``.

Tests that must not reach the sandbox replace :func:`send` (the single seam).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

import requests
from django.conf import settings

from connections import errors

logger = logging.getLogger("connections.http")

USER_AGENT = "zenduty-xurrent-portal/1.0"
# Methods that may be retried after a 5xx or a network failure: repeating them
# cannot create a second record. POST is only retried after a 429, which the
# APIs answer before doing anything.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# Xurrent's budget headers (https://developer.xurrent.com/v1/: lowercase, reset in UTC epoch
# seconds). Zenduty sends none; a service that does gets the same treatment.
RATE_LIMIT_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")
# A reset further away than this is treated as this far: a wrong clock or a
# garbled header must not park work for days.
MAX_RATE_LIMIT_PAUSE = 3600.0


@dataclass
class CallRecord:
    """What one outbound call did, for the sync history. Never holds secrets:
    no request headers, no request body, and the URL without its query string.
    ``extra`` holds the rate-limit headers of the answer (``x-ratelimit-*``,
    ``retry-after``) when it carried any."""

    service: str
    method: str
    url: str
    status: int | None
    duration_ms: int
    attempt: int
    error: str = ""
    error_kind: str = ""
    extra: dict = field(default_factory=dict)


# Observers receive every CallRecord (syncengine registers one that writes the
# history). They must not raise; failures are logged and ignored.
call_observers: list[Callable[[CallRecord], None]] = []


def send(session: requests.Session, method: str, url: str, **kwargs) -> requests.Response:
    """Send one HTTP request. The single seam for stubbing outbound HTTP."""
    return session.request(method, url, **kwargs)


class _Session(requests.Session):
    """A requests session whose close() closes its idle keep-alive connections, there and then.

    requests' own close() (urllib3 2's ``PoolManager.clear()``) only forgets
    the connection pools, and a pool closes its connections when it is
    garbage-collected. A response still refers to its pool: one kept after
    the call (the response of a call that raised stays in the error's
    traceback for as long as the caller keeps the error) kept the pool's
    idle connection open after close(), until the garbage collector got to
    it, and the server's end of it waiting.
    """

    def close(self) -> None:
        for adapter in self.adapters.values():
            managers = [getattr(adapter, "poolmanager", None), *getattr(adapter, "proxy_manager", {}).values()]
            for manager in managers:
                if manager is None:
                    continue
                for key in manager.pools.keys():
                    pool = manager.pools.get(key)
                    if pool is not None:
                        pool.close()  # closes its idle connections; one in use is closed when released
        super().close()


def _notify(record: CallRecord) -> None:
    for observer in list(call_observers):
        try:
            observer(record)
        except Exception:  # the audit trail must never break a sync
            logger.exception("http.observer-failed")


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form; dates are rare here)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def safe_json(response: requests.Response) -> Any:
    """The JSON body, or None when the body is empty or not JSON."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


class BaseClient:
    """Shared behaviour of the API clients.

    Subclasses set ``service`` and implement :meth:`auth_headers` and
    :meth:`error_for_response`.
    """

    service = "api"

    def __init__(self, *, timeout: tuple[float, float] | None = None, max_retries: int | None = None,
                 max_inline_wait: float | None = None, sleep: Callable[[float], None] = time.sleep):
        self.session = _Session()
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        self.timeout = timeout or (settings.EXTERNAL_API_CONNECT_TIMEOUT, settings.EXTERNAL_API_READ_TIMEOUT)
        self.max_retries = settings.EXTERNAL_API_MAX_RETRIES if max_retries is None else max_retries
        self.max_inline_wait = (
            settings.EXTERNAL_API_MAX_INLINE_WAIT if max_inline_wait is None else max_inline_wait
        )
        self._sleep = sleep
        # Optional time.monotonic() deadline for every call of this client, for
        # work a person waits on (provisioning from the admin): reads are cut
        # short to fit and no call or retry starts past it.
        self.deadline: float | None = None
        # The most recent rate-limit headers seen (for callers), and until when
        # (time.time()) the API said the budget is spent: the next call waits
        # for it, or is not made at all (see _wait_for_budget).
        self.rate_limit: dict[str, str] = {}
        self._budget_spent_until: float | None = None

    # -- opening and closing -------------------------------------------------
    # Clients open and close one way: ``with XurrentClient.for_tenant(t) as client:``.
    # Closing ends the session's keep-alive connections.
    def close(self) -> None:
        """Close the HTTP session (its keep-alive connections)."""
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- hooks --------------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        """Headers that authenticate a call (computed per call: tokens expire)."""
        return {}

    def error_for_response(self, response: requests.Response) -> errors.ApiError:
        """Map a non-2xx response onto the error hierarchy."""
        return default_error_for_response(self.service, response)

    def before_send(self, method: str, url: str) -> None:
        """Called before every attempt of a call (retries included): a client
        that keeps a budget of its own takes a slot here, or raises
        RateLimitedError without calling."""

    def after_send(self, method: str, url: str) -> None:
        """Called after every attempt of a call, once it was answered, failed or timed out (not when
        :meth:`before_send` refused it): a client that keeps a budget of its own says so here."""

    def on_auth_failure(self) -> bool:
        """Called after a 401; return True to retry once (e.g. after a token refresh)."""
        return False

    # -- the call -----------------------------------------------------------
    def request(self, method: str, url: str, *, params: dict | None = None, json: Any = None,
                data: Any = None, headers: dict | None = None, authenticate: bool = True,
                idempotent: bool | None = None) -> requests.Response:
        """Send a call and return the 2xx response, or raise an ApiError.

        Retries, bounded by ``max_retries``: a 429 whose Retry-After fits in
        ``max_inline_wait``; a 5xx or network failure for idempotent calls
        (after a short backoff); a 401 once when :meth:`on_auth_failure` says so.
        ``idempotent`` overrides the guess from the method, for reads sent as
        POST (Zenduty's incident filter).
        """
        method = method.upper()
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            self._wait_for_budget(url)
            self.before_send(method, url)
            call_headers = dict(headers or {})
            if authenticate:
                call_headers.update(self.auth_headers())
            started = time.monotonic()
            timeout = self._timeout_within_deadline(url, started)
            try:
                response = send(self.session, method, url, params=params, json=json, data=data,
                                headers=call_headers, timeout=timeout, allow_redirects=False)
            except errors.ApiError as exc:
                # The transport refused the call before sending anything (a
                # client's adapter, e.g. connections.zenduty.destinations):
                # recorded and raised like any other failure.
                error: errors.ApiError = exc
                response = None
            except requests.Timeout:
                error = errors.TimeoutError_(
                    f"no answer from {urlsplit(url).netloc} within {timeout[1]:.3g} s", service=self.service)
                response = None
            except requests.RequestException as exc:
                error = errors.NetworkError(
                    f"cannot reach {urlsplit(url).netloc} ({type(exc).__name__})", service=self.service)
                response = None
            duration_ms = int((time.monotonic() - started) * 1000)
            self.after_send(method, url)

            limits: dict[str, str] = {}
            if response is not None:
                limits = self._remember_rate_limit(response)
                if 200 <= response.status_code < 300:
                    self._record(method, url, response.status_code, duration_ms, attempt, extra=limits)
                    return response
                error = self.error_for_response(response)
            self._record(method, url, response.status_code if response is not None else None,
                         duration_ms, attempt, error, extra=limits)

            wait = self._retry_wait(idempotent, error, attempt)
            if isinstance(error, errors.AuthenticationError) and not refreshed and authenticate:
                refreshed = True
                if self.on_auth_failure():
                    continue
            if wait is None:
                raise error
            logger.info("%s.retry %s %s after %s in %.1fs (attempt %d)", self.service, method,
                        urlsplit(url).path, error.kind, wait, attempt)
            self._sleep(wait)
            if isinstance(error, errors.RateLimitedError):
                self._budget_spent_until = None  # the wait the 429 asked for is served

    def _timeout_within_deadline(self, url: str, now: float) -> tuple[float, float]:
        if self.deadline is None:
            return self.timeout
        left = self.deadline - now
        if left <= 0.05:
            raise errors.TimeoutError_(f"gave up before calling {urlsplit(url).netloc}: the time allowed for "
                                       f"this work is spent", service=self.service)
        return min(self.timeout[0], left), min(self.timeout[1], left)

    def _retry_wait(self, idempotent: bool, error: errors.ApiError, attempt: int) -> float | None:
        wait = self._wait_before_retry(idempotent, error, attempt)
        if wait is not None and self.deadline is not None and time.monotonic() + wait >= self.deadline:
            return None  # a retry could not finish in time
        return wait

    def _wait_before_retry(self, idempotent: bool, error: errors.ApiError, attempt: int) -> float | None:
        if attempt > self.max_retries:
            return None
        if isinstance(error, errors.RateLimitedError):
            wait = error.retry_after if error.retry_after is not None else None
            if wait is None or wait > self.max_inline_wait:
                return None  # the job layer reschedules; no worker sleeps for minutes
            return wait
        if isinstance(error, (errors.ServerError, errors.NetworkError)) and idempotent:
            return min(0.5 * (2 ** (attempt - 1)), self.max_inline_wait)
        return None

    def _wait_for_budget(self, url: str) -> None:
        """Before a call: when the last answer said the budget is spent, wait
        for its reset if that fits ``max_inline_wait`` and the deadline, else
        raise RateLimitedError without calling (the job layer reschedules)."""
        if self._budget_spent_until is None:
            return
        wait = self._budget_spent_until - time.time()
        if wait <= 0:
            self._budget_spent_until = None
            return
        in_time = self.deadline is None or time.monotonic() + wait < self.deadline
        if wait <= self.max_inline_wait and in_time:
            logger.info("%s.rate-limit-wait %.1fs before %s", self.service, wait, urlsplit(url).path)
            self._sleep(wait)
            self._budget_spent_until = None
            return
        raise errors.RateLimitedError(
            f"rate limit spent (x-ratelimit-remaining 0): {urlsplit(url).netloc} not called for another "
            f"{wait:.0f} s",
            retry_after=wait, service=self.service)

    def _remember_rate_limit(self, response: requests.Response) -> dict[str, str]:
        """Keep the budget headers of an answer; returns those it carried (for the call record).

        ``x-ratelimit-remaining: 0`` means no call before ``x-ratelimit-reset``
        (epoch seconds), or before ``retry-after`` seconds when the answer
        says so: the explicit wait wins (https://developer.xurrent.com/v1/, rate limiting).
        """
        # requests' headers are case-insensitive; Xurrent sends them lowercase.
        seen = {name: response.headers[name] for name in (*RATE_LIMIT_HEADERS, "retry-after")
                if name in response.headers}
        self.rate_limit.update({k: v for k, v in seen.items() if k in RATE_LIMIT_HEADERS})
        remaining = seen.get("x-ratelimit-remaining")
        if remaining is None:
            return seen
        if remaining.strip() != "0":
            self._budget_spent_until = None
            return seen
        retry_after = parse_retry_after(seen.get("retry-after"))
        try:
            until = time.time() + retry_after if retry_after is not None else float(seen["x-ratelimit-reset"])
        except (KeyError, ValueError):
            return seen  # spent, but no word on when it returns: the 429 (if any) decides
        self._budget_spent_until = min(until, time.time() + MAX_RATE_LIMIT_PAUSE)
        return seen

    def _record(self, method, url, status, duration_ms, attempt, error: errors.ApiError | None = None, *,
                extra: dict | None = None):
        path = urlsplit(url).path
        if error is None:
            logger.info("%s.call %s %s -> %s in %dms", self.service, method, path, status, duration_ms)
        else:
            logger.warning("%s.call %s %s -> %s in %dms: %s", self.service, method, path,
                           status or "no response", duration_ms, error)
        parts = urlsplit(url)
        _notify(CallRecord(
            service=self.service, method=method, url=f"{parts.scheme}://{parts.netloc}{parts.path}",
            status=status, duration_ms=duration_ms, attempt=attempt,
            error=str(error) if error else "", error_kind=error.kind if error else "",
            extra=dict(extra or {}),
        ))

    # -- helpers for subclasses -----------------------------------------------
    def get_json(self, url: str, **kw) -> Any:
        return safe_json(self.request("GET", url, **kw))

    @staticmethod
    def next_link(response: requests.Response) -> str | None:
        """The ``rel="next"`` URL of an RFC 8288 Link header, if any."""
        return (response.links.get("next") or {}).get("url")

    @staticmethod
    def iterate(pages: Iterable[list]) -> Iterable:
        for page in pages:
            yield from page


def default_error_for_response(service: str, response: requests.Response) -> errors.ApiError:
    """Map a status code onto the error hierarchy with a generic message."""
    status = response.status_code
    body = safe_json(response)
    message = None
    if isinstance(body, dict):
        message = body.get("message") or body.get("detail") or body.get("error")
        if message is not None and not isinstance(message, str):
            message = str(message)
    kw = {"status": status, "service": service, "body": body}
    if status == 401:
        return errors.AuthenticationError(message, **kw)
    if status == 403:
        return errors.PermissionDeniedError(message, **kw)
    if status == 404:
        return errors.NotFoundError(message, **kw)
    if status in (400, 409, 422):
        return errors.ValidationError(message, **kw)
    if status == 429:
        return errors.RateLimitedError(message, retry_after=parse_retry_after(response.headers.get("retry-after")),
                                       **kw)
    if status >= 500:
        return errors.ServerError(message, **kw)
    if 300 <= status < 400:
        location = response.headers.get("location", "")[:300]
        return errors.UnexpectedResponseError(f"unexpected redirect to {location or '?'}", location=location, **kw)
    return errors.PermanentError(message or f"unexpected HTTP {status}", **kw)
