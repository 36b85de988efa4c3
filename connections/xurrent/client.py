"""The Xurrent REST API client (requests, notes, service instances, webhooks).

Only the calls the portal needs, with Xurrent's conventions handled once:
the two auth headers, the ``{"message"}`` / 422 ``errors`` bodies, 429 with
``retry-after``, and ``Link`` pagination. Reference: https://developer.xurrent.com/v1
"""
from __future__ import annotations

import logging
import posixpath
import time
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any, Iterable, Iterator
from urllib.parse import quote, unquote, urlsplit

import requests

from connections import errors, secrets
from connections.http import BaseClient, default_error_for_response, parse_retry_after, safe_json
from connections.xurrent import hosts
from connections.xurrent.auth import (OAUTH_CREDENTIAL_ERRORS, AccessToken, DatabaseTokenStore, MemoryTokenStore,
                                      TokenStore, fingerprint, request_token)

logger = logging.getLogger("connections.xurrent")

# A 429 without retry-after: Xurrent documents the header on every 429
# (https://developer.xurrent.com/v1/#rate-limiting), so its absence means a
# proxy or an unusual limiter. A minute clears the 2-second burst limiter
# with room to spare without parking a sync for the Ruby SDK's 5 minutes.
DEFAULT_RETRY_AFTER = 60.0
# Webhook-policy algorithms the portal can verify: only a public key is ever
# exposed, so "none" and the HMAC algorithms cannot be checked by a receiver.
SUPPORTED_JWT_ALGS = ("rs256", "rs384", "rs512", "es256", "es384", "es512")


class XurrentClient(BaseClient):
    """One Xurrent account, reached with OAuth client credentials.

    Use :meth:`for_tenant` for a saved tenant (token shared through the
    database); the constructor alone keeps the token in memory.
    """

    service = "xurrent"
    per_page = 100  # Xurrent's maximum (https://developer.4me.com/v1/general/pagination)
    # Safety bound for pagination: 500 pages of 100 records. Anything larger is
    # not what this portal lists, and an endless Link chain must end somewhere.
    max_pages = 500

    def __init__(self, account_id: str, client_id: str, client_secret: str, region: str = "global",
                 environment: str = "production", *, token_store: TokenStore | None = None, **http_options):
        hosts.domain(region, environment)  # fail early on an impossible instance
        super().__init__(**http_options)
        self.account_id = account_id
        self.region = region
        self.environment = environment
        self.client_id = client_id
        self._client_secret = client_secret
        secrets.remember(client_secret)  # logs mask it even if it was never saved
        self.token_store = token_store or MemoryTokenStore()
        self._token: tuple[str, AccessToken] | None = None  # this object's copy, saves a DB read per call

    @classmethod
    def for_tenant(cls, tenant, **http_options) -> XurrentClient:
        """A client for a saved ``XurrentTenant`` whose token all processes share.

        An unsaved tenant has no row to keep a token in, so it gets a memory store.
        """
        store = DatabaseTokenStore(tenant.pk) if tenant.pk else MemoryTokenStore()
        return cls(tenant.account_id, tenant.client_id, tenant.client_secret, tenant.region, tenant.environment,
                   token_store=store, **http_options)

    def __repr__(self) -> str:
        return f"<XurrentClient {self.account_id} {self.region}/{self.environment}>"

    # -- hosts (read per call: SANDBOX_API_URL may change) ---------------------
    @property
    def base_url(self) -> str:
        return hosts.api_base_url(self.region, self.environment)

    @property
    def token_url(self) -> str:
        return hosts.oauth_token_url(self.region, self.environment)

    @property
    def account_url(self) -> str:
        return hosts.account_url(self.account_id, self.region, self.environment)

    # -- authentication ----------------------------------------------------------
    def access_token(self) -> str:
        """A bearer token that is valid for at least a few more minutes."""
        key = fingerprint(self.client_id, self._client_secret, self.token_url)
        if self._token and self._token[0] == key and self._token[1].is_fresh():
            return self._token[1].value
        token = self.token_store.load(key)
        if token is None or not token.is_fresh():
            token = request_token(self, self.token_url, self.client_id, self._client_secret)
            self.token_store.save(key, token)
        self._token = (key, token)
        return token.value

    def auth_headers(self) -> dict[str, str]:
        # Both headers are required on every call (https://developer.xurrent.com/v1/#authentication).
        # X-Xurrent-Account replaced the legacy X-4me-Account, which the
        # simulator and (apparently) Xurrent still accept.
        return {"Authorization": f"Bearer {self.access_token()}", "X-Xurrent-Account": self.account_id}

    def on_auth_failure(self) -> bool:
        """After a 401, forget the token (here and in the store) and retry once with a new one."""
        if self._token:
            self.token_store.discard(*self._token)
            self._token = None
        return True

    # -- errors ---------------------------------------------------------------
    def error_for_response(self, response: requests.Response) -> errors.ApiError:
        """Map Xurrent's error answers (https://developer.xurrent.com/v1/#http-status-codes)."""
        status = response.status_code
        body = safe_json(response)
        if status in (400, 422) and isinstance(body, dict) and body.get("errors"):
            # A list of [field, message] pairs, not a dict; a field may repeat.
            field_errors: dict[str, list[str]] = {}
            for pair in body["errors"] if isinstance(body["errors"], list) else []:
                if isinstance(pair, (list, tuple)) and len(pair) == 2:
                    field_errors.setdefault(str(pair[0]), []).append(str(pair[1]))
            return errors.ValidationError(body.get("message"), field_errors=field_errors, status=status,
                                          service=self.service, body=body)
        if status == 400 and isinstance(body, dict) and body.get("error") in OAUTH_CREDENTIAL_ERRORS:
            # The OAuth service refuses credentials RFC 6749 style (§5.2: 400 invalid_client ...,
            # https://developer.xurrent.com/v1/oauth/client_credentials_grant): the credentials are
            # wrong, not the data sent, and the call's record says so.
            return errors.AuthenticationError(str(body.get("error_description") or body["error"]), status=status,
                                              service=self.service, body=body)
        if status == 429:
            # Headers are lowercase since 2024 (changelog); requests reads them case-insensitively.
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            if retry_after is None:
                retry_after = _until_reset(response.headers.get("x-ratelimit-reset"))
            message = body.get("message") if isinstance(body, dict) else None
            return errors.RateLimitedError(message, retry_after=retry_after, status=status, service=self.service,
                                           body=body)
        return default_error_for_response(self.service, response)

    # -- plumbing ----------------------------------------------------------------
    def _url(self, *parts: Any) -> str:
        # ids may be numeric or a nodeID (base64: '/', '+', '='), so quote each part.
        return "/".join([self.base_url, *(quote(str(p), safe="") for p in parts)])

    def _call(self, method: str, *path: Any, params: dict | None = None, json: Any = None) -> Any:
        return safe_json(self.request(method, self._url(*path), params=params, json=json))

    def _paginate(self, *path: Any, params: dict | None = None) -> Iterator[dict]:
        """Yield the records of a collection, one page (of 100) at a time.

        Xurrent pages with opaque ``search_after`` cursors in ``Link: <…>; rel="next"``
        (https://developer.4me.com/v1/general/pagination). The next URL is
        complete, so the query is sent only with the first call.
        """
        url = self._url(*path)
        query: dict | None = {"per_page": self.per_page, **(params or {})}
        for _ in range(self.max_pages):
            response = self.request("GET", url, params=query)
            page = safe_json(response)
            if not isinstance(page, list):
                raise errors.PermanentError(f"Xurrent answered {urlsplit(url).path} with something other than a "
                                            f"list.", status=response.status_code, service=self.service)
            yield from page
            url, query = self.next_link(response), None
            if not url:
                return
            self._check_same_api(url)
        logger.warning("xurrent.pagination-capped %s after %d pages", urlsplit(url).path, self.max_pages)

    def _check_same_api(self, url: str) -> None:
        # The bearer token goes with every page: never follow a link elsewhere.
        if not _same_origin(url, self.base_url):
            raise errors.PermanentError("Xurrent's next-page link points outside its API; not following it.",
                                        service=self.service)

    # -- account and service instances ----------------------------------------------
    def get_account(self) -> dict:
        """The account named in ``X-Xurrent-Account`` (``GET /account``)."""
        return self._call("GET", "account")

    def get_me(self) -> dict:
        """The person the OAuth application acts as (``GET /me``): its changes come back
        as webhooks naming this person (https://developer.xurrent.com/v1/people/me/)."""
        return self._call("GET", "me")

    def iter_service_instances(self, name: str | None = None, status: str | None = None) -> Iterator[dict]:
        """Service instances, optionally with exactly this name and/or status.

        Xurrent's text filters are exact and case-sensitive. A value starting
        with ``!``, ``<`` or ``>`` would be read as a filter operator
        (https://developer.4me.com/v1/general/filtering/), so names are also
        compared here.
        """
        params = {k: v for k, v in (("name", name), ("status", status)) if v}
        for item in self._paginate("service_instances", params=params):
            if name and item.get("name") != name:
                continue
            yield item

    def search_service_instances(self, query: str, limit: int = 20) -> list[dict]:
        """Up to ``limit`` service instances whose name contains ``query`` (any case).

        For a search-as-you-type picker. The REST API has no substring or
        case-insensitive text filter, so this walks the collection (sorted by
        name) and matches here, stopping as soon as ``limit`` are found. The
        cost: a rare term in a large account reads every page (one API call per
        100 instances, against the rate limit); the gain: 'web' finds 'Website'.
        """
        needle = query.strip().casefold()
        found: list[dict] = []
        for item in self._paginate("service_instances"):
            if needle in str(item.get("name", "")).casefold():
                found.append(item)
                if len(found) >= limit:
                    break
        return found

    def get_service_instance(self, instance_id: int | str) -> dict:
        """One service instance with all its fields."""
        return self._call("GET", "service_instances", instance_id)

    # -- requests and notes ---------------------------------------------------------
    def get_request(self, request_id: int | str) -> dict:
        """One request with all its fields (``:id`` may also be a nodeID)."""
        return self._call("GET", "requests", request_id)

    def create_request(self, data: dict) -> dict:
        """Create a request (201); returns it with all fields. Never retried after a 5xx."""
        return self._call("POST", "requests", json=data)

    def update_request(self, request_id: int | str, data: dict) -> dict:
        """Change a request (PATCH); ``note``/``internal_note`` add a note on the way."""
        return self._call("PATCH", "requests", request_id, json=data)

    def find_requests(self, source: str, source_id: str) -> list[dict]:
        """Requests created by ``source`` for the external record ``source_id``.

        Xurrent does not promise that (source, sourceID) is unique, so check
        here before creating to stay idempotent
        (https://developer.xurrent.com/v1/general/source).
        """
        items = self._paginate("requests", params={"source": source, "sourceID": source_id})
        return [r for r in items if r.get("sourceID", source_id) == source_id]

    def iter_requests_updated_since(self, service_instance_id: int | str, since: datetime,
                                    fields: Iterable[str] = ()) -> Iterator[dict]:
        """The requests of one service instance updated at or after ``since``, page by page (100 each).

        ``?service_instance=<id>&updated_at=>=<time>``
        (https://developer.xurrent.com/v1/requests/ lists both as filterable;
        operators: https://developer.4me.com/v1/general/filtering/); ``fields``
        adds to the collection's default fields.
        """
        stamp = since.astimezone(dt_timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        params = {"service_instance": str(service_instance_id), "updated_at": f">={stamp}"}
        if fields:
            params["fields"] = ",".join(fields)
        return self._paginate("requests", params=params)

    def list_request_notes(self, request_id: int | str) -> list[dict]:
        """The notes of a request, oldest first (public and internal, as far as visible)."""
        return list(self._paginate("requests", request_id, "notes"))

    def add_request_note(self, request_id: int | str, text: str, internal: bool = False) -> dict:
        """Add a note (``POST /requests/:id/notes``, 201); returns ``{"id": …}``."""
        return self._call("POST", "requests", request_id, "notes", json={"text": text, "internal": internal})

    # -- webhooks ---------------------------------------------------------------
    def list_webhooks(self) -> list[dict]:
        """All webhooks of the account (needs the Account Administrator role)."""
        return list(self._paginate("webhooks"))

    def get_webhook(self, webhook_id: int | str) -> dict:
        return self._call("GET", "webhooks", webhook_id)

    def create_webhook(self, event: str, uri: str, webhook_policy_id: int | None = None, name: str | None = None,
                       description: str | None = None, disabled: bool = False) -> dict:
        """Create a webhook (201). It stays inactive until its ``webhook.verify``
        callback is called (https://developer.xurrent.com/v1/webhooks)."""
        data: dict[str, Any] = {"event": event, "uri": uri, "disabled": disabled}
        # The docs name the field "webhook_policy"; references are written with _id.
        optional = {"webhook_policy_id": webhook_policy_id, "name": name, "description": description}
        data.update({k: v for k, v in optional.items() if v is not None})
        return self._call("POST", "webhooks", json=data)

    def update_webhook(self, webhook_id: int | str, **fields: Any) -> dict:
        return self._call("PATCH", "webhooks", webhook_id, json=fields)

    def delete_webhook(self, webhook_id: int | str) -> None:
        self._call("DELETE", "webhooks", webhook_id)

    def call_verification_callback(self, callback_url: str) -> None:
        """Complete the ``webhook.verify`` handshake by GETting ``payload.callback``.

        Only a URL on this account's own host is called (in sandbox mode: under
        the simulator's path), never one a forged delivery might name. No
        token is sent and redirects are not followed.

        :raises PermanentError: for a foreign URL, or an error answer.
        """
        if not _same_origin(callback_url, self.account_url):
            raise errors.PermanentError(
                f"Refusing the webhook verification callback on {urlsplit(callback_url).netloc or '?'}: it is not "
                f"the host of account '{self.account_id}' ({urlsplit(self.account_url).netloc}).",
                service=self.service)
        self.request("GET", callback_url, authenticate=False)

    # -- webhook policies ---------------------------------------------------------
    def list_webhook_policies(self, fields: str = "id,name,disabled,jwt_alg,jwt_audience") -> list[dict]:
        """All webhook policies of the account (never with their public keys).

        Collections answer with their default fields only; ``fields`` asks for
        the audience too (``?fields=`` selects collection fields,
        https://developer.xurrent.com/v1/general/field_selection/).
        """
        return list(self._paginate("webhook_policies", params={"fields": fields}))

    def create_webhook_policy(self, jwt_alg: str = "rs256", jwt_audience: str | None = None,
                              jwt_claim_expires_in: int | None = None, disabled: bool = False) -> dict:
        """Create a webhook policy (201).

        Store ``public_key_pem`` from the answer at once: this is the only time
        Xurrent shows it (https://developer.xurrent.com/v1/webhook_policies).
        ``jwt_claim_expires_in`` is in minutes.
        """
        if jwt_alg not in SUPPORTED_JWT_ALGS:
            raise ValueError(f"jwt_alg must be one of {', '.join(SUPPORTED_JWT_ALGS)}; a receiver can only verify "
                             f"signatures with the public key.")
        data: dict[str, Any] = {"jwt_alg": jwt_alg, "disabled": disabled}
        if jwt_audience is not None:
            data["jwt_audience"] = jwt_audience
        if jwt_claim_expires_in is not None:
            data["jwt_claim_expires_in"] = jwt_claim_expires_in
        return self._call("POST", "webhook_policies", json=data)

    def get_webhook_policy(self, policy_id: int | str) -> dict:
        """A webhook policy; Xurrent never returns its public key again."""
        return self._call("GET", "webhook_policies", policy_id)

    def update_webhook_policy(self, policy_id: int | str, **fields: Any) -> dict:
        return self._call("PATCH", "webhook_policies", policy_id, json=fields)

    def delete_webhook_policy(self, policy_id: int | str) -> None:
        self._call("DELETE", "webhook_policies", policy_id)


def _same_origin(url: str, base: str) -> bool:
    """Whether ``url`` has the scheme and host[:port] of ``base`` and lies under its path.

    Real account URLs have no path, so only the host counts; the sandbox's
    ``…/sandbox/xurrent`` also pins the path prefix. A path with dot segments
    (``..``, ``.``, also percent-encoded, or behind backslashes) is refused
    outright: Xurrent's callbacks have none, and ``…/sandbox/xurrent/../../admin/``
    would pass a plain prefix check.
    """
    target, home = urlsplit(url), urlsplit(base)
    if (target.scheme, target.netloc.lower()) != (home.scheme, home.netloc.lower()):
        return False
    if _has_dot_segments(target.path):
        return False
    path = posixpath.normpath(target.path or "/")
    return (path.rstrip("/") + "/").startswith(home.path.rstrip("/") + "/")


def _has_dot_segments(path: str) -> bool:
    """Whether ``path`` has a ``.`` or ``..`` segment, however percent-encoded (up to a few times)."""
    for _ in range(4):
        if any(segment in (".", "..") for segment in path.replace("\\", "/").split("/")):
            return True
        decoded = unquote(path)
        if decoded == path:
            return False
        path = decoded
    return True  # still encoded after several rounds: nothing genuine looks like that


def _until_reset(reset: str | None) -> float:
    """Seconds until ``x-ratelimit-reset`` (epoch seconds), else DEFAULT_RETRY_AFTER."""
    try:
        wait = float(reset) - time.time()
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER
    return min(max(wait, 1.0), 3600.0)
