"""OAuth 2.0 client credentials for Xurrent, and where the tokens are kept.

Xurrent issues a bearer token for ``client_id`` + ``client_secret`` at
``POST https://oauth.<instance>/token``; it is valid for one hour
(https://developer.xurrent.com/v1/oauth/client_credentials_grant). Since
9 Jul 2025 this token request is mandatory for client-credentials apps.

Tokens are reused until shortly before they expire. A saved tenant keeps its
token in the database (``XurrentAccessToken``, encrypted) so that every web
and worker process shares one token instead of each fetching its own; a
tenant that is only being tried out from a form uses :class:`MemoryTokenStore`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.utils import timezone
from django.utils.crypto import salted_hmac

from connections import errors, secrets
from connections.http import safe_json

if TYPE_CHECKING:
    from connections.http import BaseClient

logger = logging.getLogger("connections.xurrent")

# The docs promise one hour; clients (Works4me SDK, Xurrent iPaaS) read
# ``expires_in`` and fall back to that hour when it is absent.
DEFAULT_EXPIRES_IN = 3600
# Renew this long before expiry, so a token never runs out in the middle of a
# sync and clocks that disagree by a few minutes do not matter.
REFRESH_MARGIN = timedelta(minutes=5)

# RFC 6749 §5.2 codes that mean "these credentials are wrong for this host".
OAUTH_CREDENTIAL_ERRORS = frozenset({"invalid_client", "unauthorized_client", "invalid_grant"})
_FINGERPRINT_SALT = "connections.xurrent.auth.fingerprint"


@dataclass(frozen=True)
class AccessToken:
    """A bearer token and when it expires. Its repr never shows the token."""

    value: str
    expires_at: datetime

    def __repr__(self) -> str:
        return f"<AccessToken expires_at={self.expires_at.isoformat()}>"

    def is_fresh(self, now: datetime | None = None) -> bool:
        """True while the token has more than REFRESH_MARGIN left."""
        return self.expires_at - REFRESH_MARGIN > (now or timezone.now())


def fingerprint(client_id: str, client_secret: str, token_url: str) -> str:
    """Identify the credentials and host a token was issued for.

    A token cached under another fingerprint (the secret was changed, or the
    region/environment) is never reused. The NUL separators keep
    ``("ab", "c")`` and ``("a", "bc")`` apart.

    An HMAC keyed from SECRET_KEY, not a plain hash: the fingerprint is stored
    in clear, and a plain hash would let anyone who reads the table test
    guesses of the client secret offline. A new SECRET_KEY changes every
    fingerprint, which costs each tenant one fresh token, nothing more.
    """
    return salted_hmac(_FINGERPRINT_SALT, f"{client_id}\0{client_secret}\0{token_url}",
                       algorithm="sha256").hexdigest()


class TokenStore:
    """Where a client keeps its access token between calls."""

    def load(self, fingerprint: str) -> AccessToken | None:
        """The stored token for these credentials, or None."""
        raise NotImplementedError

    def save(self, fingerprint: str, token: AccessToken) -> None:
        """Keep a newly issued token."""
        raise NotImplementedError

    def discard(self, fingerprint: str, token: AccessToken) -> None:
        """Forget ``token`` after Xurrent refused it (a newer one is kept)."""
        raise NotImplementedError


class MemoryTokenStore(TokenStore):
    """A token kept by one client object only (e.g. a tenant tested from a form)."""

    def __init__(self):
        self._entry: tuple[str, AccessToken] | None = None

    def load(self, fingerprint):
        if self._entry and self._entry[0] == fingerprint:
            return self._entry[1]
        return None

    def save(self, fingerprint, token):
        self._entry = (fingerprint, token)

    def discard(self, fingerprint, token):
        if self._entry == (fingerprint, token):
            self._entry = None


class DatabaseTokenStore(TokenStore):
    """The tenant's token in ``XurrentAccessToken``, shared by all processes.

    Two processes that find no fresh token at the same moment may both fetch
    one; both tokens are valid, and the last one saved is the one reused.
    """

    def __init__(self, tenant_id: int):
        self.tenant_id = tenant_id

    def _row(self):
        from connections.models import XurrentAccessToken

        return XurrentAccessToken.objects.filter(tenant_id=self.tenant_id).first()

    def load(self, fingerprint):
        try:
            row = self._row()
        except secrets.SecretDecryptionError:
            # The encryption key was rotated away: just fetch a new token.
            return None
        if row is None or row.fingerprint != fingerprint:
            return None
        return AccessToken(row.token, row.expires_at)

    def save(self, fingerprint, token):
        from connections.models import XurrentAccessToken

        XurrentAccessToken.objects.update_or_create(
            tenant_id=self.tenant_id,
            defaults={"fingerprint": fingerprint, "token": token.value, "expires_at": token.expires_at})

    def discard(self, fingerprint, token):
        try:
            row = self._row()
        except secrets.SecretDecryptionError:
            row = None
        # Only delete the token that failed: another process may already have
        # stored a new one (updated_at guards against that race).
        if row is not None and row.fingerprint == fingerprint and row.token == token.value:
            type(row).objects.filter(pk=row.pk, updated_at=row.updated_at).delete()


def request_token(client: BaseClient, token_url: str, client_id: str, client_secret: str) -> AccessToken:
    """Ask Xurrent's OAuth service for a new token (client credentials grant).

    The call goes through ``client.request`` (unauthenticated) so it uses the
    shared HTTP seam, timeouts and call records. Form encoding with
    ``Accept: application/json`` is what Xurrent's own iPaaS sends.

    :raises CredentialsRejectedError: (an AuthenticationError) when the
        credentials are refused; other ApiErrors (network, 5xx, a malformed
        answer) as they come.
    """
    try:
        response = client.request(
            "POST", token_url, authenticate=False, headers={"Accept": "application/json"},
            data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret})
    except (errors.ValidationError, errors.AuthenticationError, errors.PermissionDeniedError) as exc:
        raise _credentials_error(exc) from exc
    body = safe_json(response)
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str) or not body["access_token"]:
        raise errors.PermanentError("Xurrent's OAuth service answered without an access token.",
                                    status=response.status_code, service=client.service)
    try:
        expires_in = int(body.get("expires_in") or DEFAULT_EXPIRES_IN)
    except (TypeError, ValueError):
        expires_in = DEFAULT_EXPIRES_IN
    secrets.remember(body["access_token"])  # logs mask it from now on
    logger.info("xurrent.token-issued expires_in=%ss", expires_in)
    return AccessToken(body["access_token"], timezone.now() + timedelta(seconds=expires_in))


def _credentials_error(exc: errors.ApiError) -> errors.ApiError:
    # The OAuth service answers RFC 6749 style: 400 {"error": "invalid_client",
    # "error_description": ...}, unlike the REST API's {"message": ...}.
    body = exc.body if isinstance(exc.body, dict) else {}
    code = str(body.get("error") or "")
    if exc.status in (401, 403) or code in OAUTH_CREDENTIAL_ERRORS:
        reason = f" ({code})" if code else ""
        return errors.CredentialsRejectedError(
            f"Xurrent did not accept the client ID and secret{reason}. Check them, and that the region and "
            f"environment match the account.", status=exc.status, service=exc.service, body=body)
    # Any other 400 (invalid_request, unsupported_grant_type) is our bug, not the customer's.
    detail = code or str(body.get("message") or exc.message)
    return errors.PermanentError(f"Xurrent's OAuth service rejected the token request ({detail[:200]}).",
                                 status=exc.status, service=exc.service, body=body)
