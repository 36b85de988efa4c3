"""Where the Zenduty API token may be sent: the rules for an account's base URL.

The base URL is the one address of an external API that an admin types in, and
the token goes with every call to it. So, unless the operator says otherwise:

* only ``https`` on Zenduty's own domain: ``zenduty.com`` and its sub-domains.
  Zenduty documents ``https://www.zenduty.com`` for the REST API and no
  regional hosts (https://apidocs.zenduty.com); ``events.zenduty.com`` and
  ``staging.zenduty.com`` exist too. ``ZENDUTY_ALLOWED_BASE_URLS`` lists
  further base URLs (an egress proxy, a test server), http allowed;
* only public addresses: a host that is, or resolves to, a private,
  loopback, link-local (``169.254.169.254``: cloud metadata), shared,
  reserved or multicast address is refused, whatever its name, unless
  ``ZENDUTY_ALLOW_PRIVATE_ADDRESSES`` is on.

Both rules apply to the base URL an admin stores, not to the address that
``SANDBOX_API_URL`` substitutes (this portal's own simulator).

They are checked when the form is saved (:func:`base_url_problem`, which
resolves the name) and again on every call: the client refuses a stored URL
that breaks the first rule before calling (:func:`url_problem`), and
:class:`AddressCheckingAdapter` checks the addresses of every connection it
opens.

DNS rebinding (a name that answers a public address to the check and a
private one to the connection):

* covered for direct connections: the adapter resolves the name once, checks
  every address of the answer and then connects to a checked address, never
  to the name again, so no second answer is ever used. TLS still verifies the
  certificate against the name. The form's own look-up is only an early,
  clear error; the adapter's is the one that holds.
* not covered through a proxy from the environment (``HTTPS_PROXY``): the
  proxy resolves the name itself. The adapter checks its own answer for the
  name (when it gets one) but cannot see the proxy's, and does not check the
  proxy's address (the operator chose it); the proxy's egress rules are what
  protect there. SOCKS proxies are not supported (no PySocks).
* connections already open (keep-alive) are not checked again; they were
  checked when opened.
"""
from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection as urllib3_connection

from connections import errors

ZENDUTY_DOMAIN = "zenduty.com"
_DEFAULT_PORTS = {"http": 80, "https": 443}


# -- the base URL ----------------------------------------------------------------------------
def _parts(url: str) -> tuple[str, str, int | None, str]:
    """(scheme, host, port, path) in a comparable form."""
    parts = urlsplit((url or "").strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:  # a port that is not a number
        port = None
    return scheme, (parts.hostname or "").rstrip("."), port, parts.path.rstrip("/")


def same_base_url(a: str, b: str) -> bool:
    """True when both base URLs send calls to the same place (case, default port and a trailing slash aside)."""
    return _parts(a) == _parts(b)


def is_listed(url: str) -> bool:
    """True when the operator allowed this base URL (``ZENDUTY_ALLOWED_BASE_URLS``)."""
    return any(same_base_url(url, allowed) for allowed in settings.ZENDUTY_ALLOWED_BASE_URLS)


def url_problem(url: str) -> str | None:
    """Why the API token may not be sent to this base URL, judged on the URL alone (no DNS look-up), or None."""
    parts = urlsplit((url or "").strip())
    if parts.username is not None or parts.password is not None:
        return "The base URL must not contain a user name or password."
    if parts.query or parts.fragment:
        return "The base URL must not contain a query (?…) or a fragment (#…)."
    if is_listed(url):
        return None
    scheme, host, _, _ = _parts(url)
    if scheme != "https":
        return ("Only https base URLs are accepted: the API token must not travel unencrypted. An operator can "
                "allow another address with ZENDUTY_ALLOWED_BASE_URLS.")
    if not host.isascii() or not (host == ZENDUTY_DOMAIN or host.endswith("." + ZENDUTY_DOMAIN)):
        return ("Only Zenduty's own addresses (https://www.zenduty.com, or another host under zenduty.com) are "
                "accepted, so that the API token goes nowhere else. An operator can allow another address (a "
                "proxy, a test server) with ZENDUTY_ALLOWED_BASE_URLS.")
    return None


# -- the addresses ---------------------------------------------------------------------------
def address_kind(address: str) -> str | None:
    """Which kind of non-public address this is ("loopback", "private"…), or None for a public one."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone (fe80::1%eth0) is not part of it
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    # Most specific first: 127.0.0.1 and 169.254.169.254 are also "private" to ipaddress.
    for attribute, kind in (("is_unspecified", "unspecified"), ("is_loopback", "loopback"),
                            ("is_link_local", "link-local"), ("is_multicast", "multicast"),
                            ("is_private", "private"), ("is_reserved", "reserved")):
        if getattr(ip, attribute):
            return kind
    return None if ip.is_global else "non-public"  # e.g. 100.64.0.0/10, carrier-grade NAT


def _refusal(host: str, address: str, kind: str) -> errors.DestinationRefusedError:
    where = f"{host} is" if host == address else f"{host} resolves to {address},"
    return errors.DestinationRefusedError(
        f"{where} a {kind} address. The portal sends the Zenduty API token only to public addresses; an "
        f"operator can allow others with ZENDUTY_ALLOW_PRIVATE_ADDRESSES.", service="zenduty")


def check_addresses(host: str, addresses: list[str]) -> None:
    """Refuse when any address of ``host`` is not public: one bad answer is enough.

    :raises connections.errors.DestinationRefusedError:
    """
    for address in addresses:
        kind = address_kind(address)
        if kind:
            raise _refusal(host, address, kind)


def _resolve(host: str, port: int | None) -> list[tuple]:
    return socket.getaddrinfo(host, port, urllib3_connection.allowed_gai_family(), socket.SOCK_STREAM)


def address_problem(url: str) -> str | None:
    """Why this base URL's host is not allowed: a literal IP or a name resolving to a non-public address.

    A name that does not resolve is no problem here: the live check then says
    it cannot reach Zenduty, and a call never goes to an unchecked address.
    """
    if settings.ZENDUTY_ALLOW_PRIVATE_ADDRESSES:
        return None
    _, host, port, _ = _parts(url)
    if not host:
        return None
    try:
        check_addresses(host, [info[4][0] for info in _resolve(host, port)])
    except socket.gaierror:
        return None
    except errors.DestinationRefusedError as exc:
        return exc.message
    return None


def base_url_problem(url: str) -> str | None:
    """Why the API token may not be sent to this base URL (both rules, with a DNS look-up), or None."""
    return url_problem(url) or address_problem(url)


# -- every connection ------------------------------------------------------------------------------
def _checked(host: str, port: int | None) -> bool:
    """Whether connections to host:port must go to public addresses only."""
    if settings.ZENDUTY_ALLOW_PRIVATE_ADDRESSES:
        return False
    sandbox = settings.SANDBOX_API_URL
    # The simulator this portal serves itself: the substituted address, not the stored one.
    return not (sandbox and _parts(sandbox)[1:3] == (host.rstrip("."), port))


class _AddressCheckingConnection:
    """Opens the socket to a checked address of the host, never to its name (see the module docstring)."""

    def _new_conn(self):
        if getattr(self, "proxy", None) is not None:
            # Through a proxy (from the environment): the proxy resolves and
            # connects. Check what the name resolves to here, as far as it does.
            target = self._tunnel_host
            if target and _checked(target, self._tunnel_port):
                try:
                    check_addresses(target, [info[4][0] for info in _resolve(target, self._tunnel_port)])
                except socket.gaierror:
                    pass  # only the proxy can resolve it
            return super()._new_conn()
        if not _checked(self.host, self.port):
            return super()._new_conn()
        try:
            answers = _resolve(self.host, self.port)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        check_addresses(self.host, [info[4][0] for info in answers])
        last_error: OSError | None = None
        for *_, sockaddr in answers:
            try:
                return urllib3_connection.create_connection(
                    (sockaddr[0], self.port), self.timeout, source_address=self.source_address,
                    socket_options=self.socket_options)
            except OSError as exc:  # this address failed; try the next one, as urllib3 does
                last_error = exc
        if isinstance(last_error, socket.timeout):
            raise ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})") from last_error
        raise NewConnectionError(self, f"Failed to establish a new connection: {last_error}") from last_error


class _CheckedHTTPConnection(_AddressCheckingConnection, HTTPConnection):
    pass


class _CheckedHTTPSConnection(_AddressCheckingConnection, HTTPSConnection):
    pass


class _CheckedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _CheckedHTTPConnection


class _CheckedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _CheckedHTTPSConnection


_CHECKED_POOLS = {"http": _CheckedHTTPConnectionPool, "https": _CheckedHTTPSConnectionPool}


class AddressCheckingAdapter(HTTPAdapter):
    """A requests transport whose every new connection goes to a public address only.

    A refused connection raises :class:`connections.errors.DestinationRefusedError`
    before a byte is sent (no TCP connection is even opened).
    """

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _CHECKED_POOLS

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = _CHECKED_POOLS
        return manager
