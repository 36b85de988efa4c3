"""The typed error hierarchy shared by every external API client.

Each error says whether retrying can help (``retryable``) so that the sync
engine and the admin can decide what to do without knowing HTTP. Messages are
written for people (they end up on admin forms and history pages) and never
contain a secret: clients build them from status codes and the vendor's
error text, not from request headers or bodies they sent.
"""
from __future__ import annotations

from http import HTTPStatus


class ApiError(Exception):
    """Any failure talking to an external API.

    :param message: a sentence a person can act on.
    :param status: the HTTP status, or None when no response arrived.
    :param service: "xurrent" or "zenduty".
    :param retryable: True when the same call may succeed later.
    """

    retryable = False
    default_message = "The API call failed."

    def __init__(self, message: str | None = None, *, status: int | None = None, service: str = "",
                 body: object = None):
        self.message = message or self.default_message
        self.status = status
        self.service = service
        self.body = body
        super().__init__(self.message)

    @property
    def permanent(self) -> bool:
        """True when retrying the same call cannot help."""
        return not self.retryable

    @property
    def kind(self) -> str:
        """A short machine-readable name for history records and filters."""
        return _KIND_BY_CLASS.get(type(self).__name__, "error")

    @property
    def summary(self) -> str:
        """The answer in a few words from its status code alone, e.g. "401 (unauthorized)".

        For pages that must not echo what the remote server wrote: its text
        is whatever that server chose to put there.
        """
        if self.status is None:
            return "nothing usable"
        try:
            return f"{self.status} ({HTTPStatus(self.status).phrase.lower()})"
        except ValueError:  # a code Python does not know
            return f"HTTP {self.status}"

    def __str__(self) -> str:
        prefix = f"{self.service} " if self.service else ""
        status = f"HTTP {self.status}: " if self.status else ""
        return f"{prefix}{status}{self.message}".strip()


class PermanentError(ApiError):
    """Retrying will not help until someone changes something."""


class AuthenticationError(PermanentError):
    """Credentials were refused (HTTP 401, or OAuth 400 invalid_client)."""

    default_message = "The credentials were not accepted."


class CredentialsRejectedError(AuthenticationError):
    """The OAuth service refused to issue a token for the client ID and secret.

    Unlike a 401 on an API call (which may only mean a stale token), this
    blames the credentials themselves: wrong, regenerated, or the OAuth
    application was disabled, even when a cached token worked a moment ago.
    """

    default_message = "The OAuth service refused the client ID and secret."


class PermissionDeniedError(PermanentError):
    """The credentials are valid but lack a role or scope (HTTP 403)."""

    default_message = "The credentials lack the permission for this action."


class NotFoundError(PermanentError):
    """The record or path does not exist (HTTP 404)."""

    default_message = "Not found."


class ValidationError(PermanentError):
    """The API rejected the data (HTTP 400/422).

    ``field_errors`` maps field name to a list of messages, normalised from
    Xurrent's ``[[field, message], ...]`` and DRF's ``{field: [messages]}``.
    """

    default_message = "The data was rejected."

    def __init__(self, message=None, *, field_errors: dict[str, list[str]] | None = None, **kw):
        self.field_errors = field_errors or {}
        super().__init__(message, **kw)

    def __str__(self) -> str:
        base = super().__str__()
        if not self.field_errors:
            return base
        details = "; ".join(f"{f}: {', '.join(m)}" for f, m in self.field_errors.items())
        return f"{base} ({details})"


class UnexpectedResponseError(PermanentError):
    """An answer that is not the API's own: a redirect (never followed: the
    credentials would go along), or a 2xx whose body is not the JSON the API
    sends (an HTML page from a web site or a proxy). Usually a wrong base URL.

    ``location`` is the redirect target, when there is one.
    """

    default_message = "The answer did not come from the API."

    def __init__(self, message=None, *, location: str = "", **kw):
        self.location = location
        super().__init__(message, **kw)


class DestinationRefusedError(PermanentError):
    """The call was not made: the address it would go to is not allowed
    (connections.zenduty.destinations). The message says which rule."""

    default_message = "This address is not allowed."


class RetryableError(ApiError):
    """Retrying later may succeed."""

    retryable = True


class RateLimitedError(RetryableError):
    """HTTP 429. ``retry_after`` is the wait in seconds the API asked for."""

    default_message = "Rate limited by the API."

    def __init__(self, message=None, *, retry_after: float | None = None, **kw):
        self.retry_after = retry_after
        super().__init__(message, **kw)


class ServerError(RetryableError):
    """HTTP 5xx from the API."""

    default_message = "The API answered with a server error."


class NetworkError(RetryableError):
    """No usable response: connection refused, DNS failure, TLS error, timeout."""

    default_message = "The API could not be reached."


class TimeoutError_(NetworkError):
    """The API did not answer within the timeout."""

    default_message = "The API did not answer in time."


_KIND_BY_CLASS = {
    "AuthenticationError": "authentication",
    "CredentialsRejectedError": "authentication",
    "PermissionDeniedError": "permission",
    "NotFoundError": "not_found",
    "ValidationError": "validation",
    "RateLimitedError": "rate_limited",
    "ServerError": "server",
    "NetworkError": "network",
    "TimeoutError_": "timeout",
    "UnexpectedResponseError": "unexpected_response",
    "DestinationRefusedError": "refused_destination",
    "PermanentError": "permanent",
    "RetryableError": "retryable",
    "ApiError": "error",
}
# Every ``ApiError.kind``, e.g. for a history filter's choices.
ERROR_KINDS = tuple(sorted(set(_KIND_BY_CLASS.values())))
