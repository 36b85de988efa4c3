"""Where a Xurrent account lives: REST, OAuth and account (UI) hosts.

Xurrent runs one instance per region and environment, each with its own
family of hosts (``api.``, ``oauth.``, ``<account>.``). See "Service URL" on
https://developer.xurrent.com/v1 and https://developer.xurrent.com/v1/oauth.

When ``settings.SANDBOX_API_URL`` is set, every host is replaced by the local
simulator, each instance by a host of its own there
(``…/sandbox/xurrent/<domain>``; docs/architecture.md, "Pointing at the
sandbox"), so a tenant saved with the wrong region or environment is refused
in the demo as Xurrent would refuse it. The setting is read on every call, not
at import, so tests and the live server can switch it.
"""
from __future__ import annotations

from django.conf import settings

# The values of connections.models.XurrentRegion / XurrentEnvironment, kept as
# plain strings so this module can be imported before the app registry is ready.
REGIONS = ("global", "au", "uk", "ch", "us")
ENVIRONMENTS = ("production", "qa", "demo")

# (region, environment) -> domain shared by the api./oauth./<account>. hosts.
_DOMAINS = {
    ("global", "production"): "xurrent.com",
    ("au", "production"): "au.xurrent.com",
    ("uk", "production"): "uk.xurrent.com",
    ("ch", "production"): "ch.xurrent.com",
    ("us", "production"): "us.xurrent.com",
    ("global", "qa"): "xurrent.qa",
    ("au", "qa"): "au.xurrent.qa",
    ("uk", "qa"): "uk.xurrent.qa",
    ("ch", "qa"): "ch.xurrent.qa",
    ("us", "qa"): "us.xurrent.qa",
    # Xurrent has a single Demo instance, in the Global region.
    ("global", "demo"): "xurrent-demo.com",
}

# Every instance's domain, e.g. for the simulator's routes.
DOMAINS = tuple(dict.fromkeys(_DOMAINS.values()))

SANDBOX_PREFIX = "/sandbox/xurrent"


def domain(region: str, environment: str) -> str:
    """The domain of a Xurrent instance, e.g. ``au.xurrent.com``.

    :raises ValueError: for an unknown region or environment, or Demo outside Global.
    """
    if region not in REGIONS:
        raise ValueError(f"Unknown Xurrent region {region!r}; use one of {', '.join(REGIONS)}.")
    if environment not in ENVIRONMENTS:
        raise ValueError(f"Unknown Xurrent environment {environment!r}; use one of {', '.join(ENVIRONMENTS)}.")
    try:
        return _DOMAINS[(region, environment)]
    except KeyError:
        raise ValueError(
            f"Xurrent has no {environment} instance in region {region!r}: the only Demo instance is in the "
            f"Global region (xurrent-demo.com). Choose region 'global', or another environment.") from None


def sandbox_url() -> str:
    """``settings.SANDBOX_API_URL`` without a trailing slash ('' when not in sandbox mode)."""
    return (getattr(settings, "SANDBOX_API_URL", "") or "").rstrip("/")


def sandbox_host_url(host_domain: str) -> str:
    """Where the simulator serves the instance of ``host_domain`` ('' when not in sandbox mode).

    One path segment per instance stands for its family of hosts (``api.``,
    ``oauth.``, ``<account>.``): an account lives in one instance only, and the
    others do not know its credentials.
    """
    sandbox = sandbox_url()
    return f"{sandbox}{SANDBOX_PREFIX}/{host_domain}" if sandbox else ""


def api_base_url(region: str, environment: str) -> str:
    """The REST API base URL, e.g. ``https://api.au.xurrent.com/v1`` (no trailing slash)."""
    host_domain = domain(region, environment)
    if sandbox := sandbox_host_url(host_domain):
        return f"{sandbox}/v1"
    return f"https://api.{host_domain}/v1"


def oauth_token_url(region: str, environment: str) -> str:
    """The OAuth token endpoint, e.g. ``https://oauth.au.xurrent.com/token``."""
    host_domain = domain(region, environment)
    if sandbox := sandbox_host_url(host_domain):
        return f"{sandbox}/oauth/token"
    return f"https://oauth.{host_domain}/token"


def account_url(account_id: str, region: str, environment: str) -> str:
    """The account's own (UI) URL, e.g. ``https://wdc.au.xurrent.com``.

    Xurrent uses it as the ``iss`` claim of signed webhooks and as the host of
    ``webhook.verify`` callbacks.
    """
    host_domain = domain(region, environment)
    if sandbox := sandbox_host_url(host_domain):
        return sandbox
    return f"https://{account_id}.{host_domain}"
