"""Live checks of connections, with errors a person can act on.

Saving a connection in the admin proves it works: for Xurrent, an OAuth token
and a read of the account; for Zenduty, a list of teams, which also names the
Zenduty account (connected once only). A failure is turned into a
:class:`ConnectionCheckError` naming the form field to fix.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.db import IntegrityError, transaction

from connections import errors
from connections.models import XurrentTenant, ZendutyAccount

logger = logging.getLogger("connections.services")


@dataclass
class ConnectionCheckError(Exception):
    """A failed live check: which field is most likely wrong, and why."""

    field: str | None
    message: str

    def __str__(self) -> str:
        return self.message


def _xurrent_client(tenant: XurrentTenant, *, shared_token: bool):
    from connections.xurrent import XurrentClient

    if shared_token and tenant.pk:
        return XurrentClient.for_tenant(tenant)
    # An unsaved (or just edited) tenant gets a private in-memory token so a
    # failed attempt never touches the cached token of the stored connection.
    return XurrentClient(account_id=tenant.account_id, client_id=tenant.client_id,
                         client_secret=tenant.client_secret, region=tenant.region,
                         environment=tenant.environment)


def _oauth_said(exc: errors.ApiError) -> str:
    """What Xurrent's OAuth service answered (RFC 6749 ``error`` and ``error_description``), if anything.

    Not ``exc.message``: that is already the client's own sentence about the
    credentials, which the check's message would only repeat.
    """
    body = exc.body if isinstance(exc.body, dict) else {}
    said = " – ".join(str(body[key])[:200] for key in ("error", "error_description") if body.get(key))
    return f" Xurrent said: {said}" if said else ""


def check_xurrent(tenant: XurrentTenant, *, shared_token: bool = False) -> dict:
    """Get an OAuth token and read the account. Returns the account record.

    :raises ConnectionCheckError: with the field to fix and a plain message.
    """
    instance = f"{tenant.get_region_display()} {tenant.get_environment_display()}"
    try:
        token_ok = False
        with _xurrent_client(tenant, shared_token=shared_token) as client:
            client.access_token()
            token_ok = True
            account = client.get_account()
            _read_portal_person(tenant, client)
    except errors.AuthenticationError as exc:
        # A refused token request blames the credentials even after a cached
        # token worked: the account read then answers 401, the client asks for
        # a fresh token, and that is what fails (application disabled, secret
        # regenerated).
        if isinstance(exc, errors.CredentialsRejectedError) or not token_ok:
            raise ConnectionCheckError(
                "client_secret",
                f"Xurrent ({instance}) did not accept this client ID and secret. Check both, that the OAuth "
                f"application is still enabled, and that the region and environment are those of the "
                f"account.{_oauth_said(exc)}") from exc
        raise ConnectionCheckError(
            "account_id",
            f"The credentials work, but Xurrent refused access to account '{tenant.account_id}'. "
            f"Check the account ID (Settings → Account Overview). Xurrent said: {exc.message}") from exc
    except errors.PermissionDeniedError as exc:
        raise ConnectionCheckError(
            "account_id",
            f"Xurrent refused to show account '{tenant.account_id}' to this application: either the account ID "
            f"is wrong or the OAuth application lacks the scope 'Account – Read'. Xurrent said: {exc.message}",
        ) from exc
    except errors.NotFoundError as exc:
        raise ConnectionCheckError(
            "account_id", f"Xurrent ({instance}) has no account '{tenant.account_id}'.") from exc
    except errors.NetworkError as exc:
        raise ConnectionCheckError(
            "region", f"Cannot reach Xurrent's {instance} servers ({exc.message}). Check the region and "
                      f"environment, and that this server can reach the internet.") from exc
    except errors.RateLimitedError as exc:
        wait = f" Try again in {int(exc.retry_after)} s." if exc.retry_after else ""
        raise ConnectionCheckError(None, f"Xurrent is rate limiting these credentials.{wait}") from exc
    except errors.ApiError as exc:
        raise ConnectionCheckError(None, f"Xurrent answered with an error: {exc}") from exc
    returned = str(account.get("id", "")) if isinstance(account, dict) else ""
    if returned and returned != tenant.account_id:
        raise ConnectionCheckError(
            "account_id", f"Xurrent answered for account '{returned}', not '{tenant.account_id}'.")
    return account


def _read_portal_person(tenant: XurrentTenant, client) -> None:
    """Who the portal acts as (``GET /me``), kept on ``tenant`` (not saved here).

    The sync recognises its own changes coming back as webhooks by this
    person. A refusal leaves it unknown rather than failing the check.
    """
    try:
        me = client.get_me()
    except (errors.PermissionDeniedError, errors.NotFoundError) as exc:
        logger.warning("connections.portal-person-unreadable %r: %s", tenant, exc.message)
        tenant.portal_person_id, tenant.portal_person_name = "", ""
        return
    tenant.portal_person_id = str(me.get("id") or "") if isinstance(me, dict) else ""
    tenant.portal_person_name = str(me.get("name") or "")[:200] if isinstance(me, dict) else ""


def record_portal_person(tenant: XurrentTenant, me: dict | None = None) -> None:
    """Store who the portal acts as on a saved tenant (from ``me``, a ``GET /me`` answer, when given)."""
    if me is not None:
        tenant.portal_person_id = str(me.get("id") or "")
        tenant.portal_person_name = str(me.get("name") or "")[:200]
    if tenant.pk:
        XurrentTenant.objects.filter(pk=tenant.pk).update(portal_person_id=tenant.portal_person_id,
                                                          portal_person_name=tenant.portal_person_name)


def check_zenduty(account: ZendutyAccount) -> list[dict]:
    """List the teams the API token can see. Returns them.

    Zenduty's answers are summarised by their status code, never quoted: the
    base URL decides who answers, and a server that is not Zenduty's must not
    get its text onto the admin's page.

    :raises ConnectionCheckError: with the field to fix and a plain message.
    """
    from connections.zenduty import ZendutyClient

    try:
        with ZendutyClient(account.api_token, base_url=account.base_url) as client:
            return list(client.list_teams())
    except errors.DestinationRefusedError as exc:
        raise ConnectionCheckError("base_url", exc.message) from exc
    except errors.AuthenticationError as exc:
        raise ConnectionCheckError(
            "api_token", f"Zenduty answered {exc.summary}: it did not accept this API token. Create one under "
                         f"Account → API Keys (it is shown only once).") from exc
    except errors.PermissionDeniedError as exc:
        raise ConnectionCheckError(
            "api_token", f"Zenduty answered {exc.summary}: this API token may not read teams. Use a key of an "
                         f"Account Owner or Admin.") from exc
    except errors.NotFoundError as exc:
        raise ConnectionCheckError(
            "base_url", "This base URL does not serve the Zenduty API (HTTP 404 on /api/account/teams/).") from exc
    except errors.NetworkError as exc:
        raise ConnectionCheckError("base_url", f"Cannot reach Zenduty ({exc.message}).") from exc
    except errors.UnexpectedResponseError as exc:
        raise ConnectionCheckError("base_url", _not_zenduty_api(exc)) from exc
    except errors.RateLimitedError as exc:
        raise ConnectionCheckError(None, "Zenduty is rate limiting this token; try again in a minute.") from exc
    except errors.ApiError as exc:
        raise ConnectionCheckError(None, f"Zenduty answered {exc.summary}.") from exc


def zenduty_account_identity(teams: list[dict]) -> str | None:
    """Which Zenduty account a token belongs to: the ``account`` its teams name (None when it lists none).

    Zenduty's team records carry their account's ``unique_id``; the check lists them anyway, so
    knowing the account costs no call. Never the token: it is compared nowhere, in clear or not.
    """
    found = {str(team.get("account") or "").strip() for team in teams if isinstance(team, dict)}
    found.discard("")
    return found.pop()[:64] if len(found) == 1 else None


def zenduty_account_connected(identity: str | None, *, exclude_pk=None) -> ZendutyAccount | None:
    """The stored connection of the Zenduty account ``identity``, other than ``exclude_pk``."""
    if not identity:
        return None
    return ZendutyAccount.objects.filter(account_unique_id=identity).exclude(pk=exclude_pk).first()


def already_connected_message(existing: ZendutyAccount) -> str:
    return (f"This Zenduty account is already connected as “{existing.name}”. Change that connection instead: "
            f"one Zenduty account is connected once (its services and rate limits are one).")


def record_zenduty_identity(account: ZendutyAccount, teams: list[dict]) -> None:
    """Give a stored connection checked again its Zenduty account, if it had none and no other has it.

    A row of before the identity was recorded that duplicates another keeps none (logged): it
    cannot have the other's, and nothing of its working is changed by a re-check.
    """
    identity = zenduty_account_identity(teams)
    if not identity or account.account_unique_id or not account.pk:
        return
    existing = zenduty_account_connected(identity, exclude_pk=account.pk)
    if existing is not None:
        logger.warning("connections.zenduty-duplicate %r is the same Zenduty account as %r", account, existing)
        return
    try:
        with transaction.atomic():
            ZendutyAccount.objects.filter(pk=account.pk, account_unique_id__isnull=True).update(
                account_unique_id=identity)
    except IntegrityError:  # another re-check of a duplicate got there first
        logger.warning("connections.zenduty-duplicate %r is the same Zenduty account as another", account)
        return
    account.account_unique_id = identity


def _not_zenduty_api(exc: errors.UnexpectedResponseError) -> str:
    """Why a base URL that answered is still not Zenduty's API."""
    if exc.status and 300 <= exc.status < 400:
        # Only the origin of the redirect target: the rest is the remote server's text.
        target = urlsplit(exc.location)
        try:
            origin = f"{target.scheme}://{target.hostname}{f':{target.port}' if target.port else ''}"
        except ValueError:  # a port that is not a number
            origin = ""
        where = origin if target.scheme in ("http", "https") and target.hostname else "another address"
        return (f"This base URL redirects (HTTP {exc.status}) to {where} instead of answering Zenduty's API. "
                f"The portal does not follow redirects, which would send the API token along: enter the "
                f"address it redirects to.")
    return (f"This base URL does not serve Zenduty's API: {exc.message} "
            "Check the address; it is https://www.zenduty.com unless Zenduty told you otherwise.")


def test_connection(connection: XurrentTenant | ZendutyAccount) -> str:
    """Re-check a stored connection and record the outcome. Returns the error ('' when fine)."""
    try:
        if isinstance(connection, XurrentTenant):
            check_xurrent(connection, shared_token=True)
            record_portal_person(connection)
        else:
            record_zenduty_identity(connection, check_zenduty(connection))
    except ConnectionCheckError as exc:
        connection.mark_checked(exc.message)
        logger.info("connections.check-failed %r: %s", connection, exc.message)
        return exc.message
    connection.mark_checked("")
    return ""
