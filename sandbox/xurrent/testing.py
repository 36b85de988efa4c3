"""Helpers for tests that talk to the simulated Xurrent over real HTTP.

Not used by the simulator itself. Typical use with the ``sandbox`` fixture::

    sim = demo.make_account("wdc", "id", "secret")
    api = XurrentApi.connect(sandbox.url, "wdc", "id", "secret")
    api.get("/v1/me").json()
"""
from __future__ import annotations

import requests

from sandbox.xurrent.models import DEFAULT_INSTANCE

PREFIX = "/sandbox/xurrent"


def token_url(base_url: str, instance: str = DEFAULT_INSTANCE) -> str:
    return f"{base_url.rstrip('/')}{PREFIX}/{instance}/oauth/token"


def fetch_token(base_url: str, client_id: str, client_secret: str, instance: str = DEFAULT_INSTANCE) -> str:
    """An access token from the simulated OAuth endpoint of ``instance`` (client credentials, form-encoded)."""
    response = requests.post(token_url(base_url, instance), data={"grant_type": "client_credentials", "client_id": client_id,
                                                        "client_secret": client_secret}, timeout=10)
    response.raise_for_status()
    return response.json()["access_token"]


class XurrentApi:
    """A ``requests`` session with the bearer token and ``X-Xurrent-Account`` set.

    Paths are relative to the account host of ``instance``,
    ``/sandbox/xurrent/<domain>`` (``"/v1/requests"``); absolute URLs (e.g.
    from a ``link`` header) are used as they are.
    """

    def __init__(self, base_url: str, account_id: str | None, token: str | None,
                 instance: str = DEFAULT_INSTANCE):
        self.base_url = base_url.rstrip("/")
        self.instance = instance
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        if account_id:
            self.session.headers["X-Xurrent-Account"] = account_id

    @classmethod
    def connect(cls, base_url: str, account_id: str, client_id: str, client_secret: str,
                instance: str = DEFAULT_INSTANCE) -> XurrentApi:
        return cls(base_url, account_id, fetch_token(base_url, client_id, client_secret, instance), instance)

    @property
    def account_url(self) -> str:
        return f"{self.base_url}{PREFIX}/{self.instance}"

    def url(self, path: str) -> str:
        return path if path.startswith("http") else f"{self.account_url}{path}"

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.session.request(method, self.url(path), **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json=None, **kwargs) -> requests.Response:
        return self.request("POST", path, json=json, **kwargs)

    def patch(self, path: str, json=None, **kwargs) -> requests.Response:
        return self.request("PATCH", path, json=json, **kwargs)

    def delete(self, path: str, **kwargs) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def walk(self, path: str, **params) -> list[dict]:
        """Every record of a collection, following ``link: rel="next"``."""
        records: list[dict] = []
        response = self.get(path, params=params)
        while True:
            response.raise_for_status()
            records.extend(response.json())
            next_url = response.links.get("next", {}).get("url")
            if not next_url:
                return records
            response = self.get(next_url)
