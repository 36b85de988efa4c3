"""Where the Zenduty API token may go: the base URL rules, in the form and at call time.

A local listener (tests/receiver.py) stands where a wrong base URL would send
the token; the tests prove nothing reached it. Outbound HTTP is otherwise real
(or watched at the one seam, ``connections.http.send``).
"""
import socket

import pytest
import urllib3.util.connection

from connections import errors, http
from connections.models import ConnectionStatus, ZendutyAccount
from connections.services import test_connection as check_stored_connection
from connections.zenduty import ZendutyClient, destinations
from tests.receiver import Receiver

pytestmark = pytest.mark.django_db

ADD = "/admin/connections/zendutyaccount/add/"
STORED_TOKEN = "stored-zenduty-token-4f1c"
NEW_TOKEN = "typed-again-zenduty-token-9b2e"


@pytest.fixture
def production(settings):
    """No simulator standing in: calls go where the stored base URL says."""
    settings.SANDBOX_API_URL = ""
    settings.ZENDUTY_ALLOWED_BASE_URLS = []
    settings.ZENDUTY_ALLOW_PRIVATE_ADDRESSES = False
    settings.EXTERNAL_API_CONNECT_TIMEOUT = 0.5  # a refused address that slipped through fails fast
    return settings


@pytest.fixture
def listener():
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def sent(monkeypatch):
    """Every call that passes the one seam (and then goes out for real)."""
    calls = []
    real_send = http.send

    def send(session, method, url, **kwargs):
        calls.append((method, url))
        return real_send(session, method, url, **kwargs)

    monkeypatch.setattr(http, "send", send)
    return calls


@pytest.fixture
def recorded():
    """The CallRecords of outbound calls (what the sync history stores)."""
    records = []
    http.call_observers.append(records.append)
    yield records
    http.call_observers.remove(records.append)


def change_url(account):
    return f"/admin/connections/zendutyaccount/{account.pk}/change/"


def form_errors(response):
    assert response.status_code == 200, response.get("Location")
    return response.context["adminform"].form.errors


# -- the form: a new base URL needs the token again ------------------------------------------------

def test_a_new_base_url_with_a_blank_token_asks_for_the_token_and_calls_nobody(admin_client, production, listener,
                                                                               sent):
    production.ZENDUTY_ALLOWED_BASE_URLS = [listener.url]
    production.ZENDUTY_ALLOW_PRIVATE_ADDRESSES = True  # the new address itself would be allowed
    account = ZendutyAccount.objects.create(name="Ops", api_token=STORED_TOKEN, status=ConnectionStatus.ACTIVE)

    response = admin_client.post(change_url(account), {"name": "Ops", "api_token": "", "base_url": listener.url})

    assert listener.received == [] and sent == []
    assert "enter the API token again" in " ".join(form_errors(response).get("api_token", []))
    account.refresh_from_db()
    assert account.base_url == "https://www.zenduty.com" and account.api_token == STORED_TOKEN


def test_the_new_base_url_is_accepted_with_the_token_typed_again_when_the_operator_allows_it(
        admin_client, production, listener):
    production.ZENDUTY_ALLOWED_BASE_URLS = [listener.url]
    production.ZENDUTY_ALLOW_PRIVATE_ADDRESSES = True
    account = ZendutyAccount.objects.create(name="Ops", api_token=STORED_TOKEN, status=ConnectionStatus.ACTIVE)
    listener.replies.append(b"[]")

    response = admin_client.post(change_url(account), {"name": "Ops", "api_token": NEW_TOKEN,
                                                       "base_url": f"{listener.url}/"})

    assert response.status_code == 302
    assert [(r.method, r.path, r.headers["authorization"]) for r in listener.received] == [
        ("GET", "/api/account/teams/", f"Token {NEW_TOKEN}")]
    account.refresh_from_db()
    assert account.base_url == listener.url and account.api_token == NEW_TOKEN


@pytest.mark.django_db(transaction=True)  # the live server reads what the test wrote
def test_an_unchanged_base_url_keeps_the_stored_token_through_the_sandbox(admin_client, sandbox):
    from sandbox.zenduty import demo as zenduty_demo

    zenduty_demo.seed()
    assert admin_client.post(ADD, {"name": "ZD", "api_token": "demo-zenduty-token",
                                   "base_url": "https://www.zenduty.com"}).status_code == 302
    account = ZendutyAccount.objects.get()
    # The same address written differently is not a new one.
    response = admin_client.post(change_url(account), {"name": "Renamed", "api_token": "",
                                                       "base_url": "https://WWW.zenduty.com:443/"})
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.name == "Renamed" and account.api_token == "demo-zenduty-token"
    assert account.status == ConnectionStatus.ACTIVE


# -- the form: which base URLs ----------------------------------------------------------------------

@pytest.mark.parametrize("base_url, says", [
    ("http://www.zenduty.com", "Only https base URLs"),
    ("https://zenduty.example.com", "Only Zenduty's own addresses"),
    ("https://www.zenduty.com.example.net", "Only Zenduty's own addresses"),
    ("https://evilzenduty.com", "Only Zenduty's own addresses"),
    ("https://www.zenduty.com@example.net", "user name or password"),
    ("https://127.0.0.1", "Only Zenduty's own addresses"),
    ("LISTENER", "Only https base URLs"),
])
def test_other_base_urls_are_refused_by_default_without_a_call(admin_client, production, listener, sent, recorded,
                                                               base_url, says):
    base_url = listener.url if base_url == "LISTENER" else base_url
    response = admin_client.post(ADD, {"name": "ZD", "api_token": NEW_TOKEN, "base_url": base_url})
    assert says in " ".join(form_errors(response)["base_url"])
    assert listener.received == [] and sent == []
    assert recorded == []  # the form refused it: not even a refused call in the history
    assert ZendutyAccount.objects.count() == 0


@pytest.mark.parametrize("base_url, says", [
    ("http://127.0.0.1:{port}", "127.0.0.1 is a loopback address"),
    ("http://localhost:{port}", "localhost resolves to"),  # a name is judged by its addresses
    ("http://[::1]:{port}", "::1 is a loopback address"),
    ("http://[::ffff:127.0.0.1]:{port}", "a loopback address"),
    ("http://169.254.169.254", "169.254.169.254 is a link-local address"),  # cloud metadata
    ("http://10.20.30.40", "10.20.30.40 is a private address"),
    ("http://192.168.1.10:8080", "192.168.1.10 is a private address"),
])
def test_private_loopback_and_link_local_addresses_are_refused_even_when_the_url_is_allowed(
        admin_client, production, listener, sent, base_url, says):
    base_url = base_url.format(port=listener.port)
    production.ZENDUTY_ALLOWED_BASE_URLS = [base_url]
    response = admin_client.post(ADD, {"name": "ZD", "api_token": NEW_TOKEN, "base_url": base_url})
    message = " ".join(form_errors(response)["base_url"])
    assert says in message and "ZENDUTY_ALLOW_PRIVATE_ADDRESSES" in message
    if "localhost" in base_url:
        assert "loopback address" in message
    assert listener.received == [] and sent == []


@pytest.mark.django_db(transaction=True)
def test_the_stored_base_url_is_judged_while_the_sandbox_stands_in_for_it(admin_client, sandbox, settings):
    # In the demo every call goes to the simulator, so only the form sees the stored address.
    from sandbox.zenduty import demo as zenduty_demo

    zenduty_demo.seed()
    settings.ZENDUTY_ALLOWED_BASE_URLS = ["http://10.20.30.40"]
    response = admin_client.post(ADD, {"name": "ZD", "api_token": "demo-zenduty-token",
                                       "base_url": "http://10.20.30.40"})
    assert "10.20.30.40 is a private address" in " ".join(form_errors(response)["base_url"])
    assert ZendutyAccount.objects.count() == 0


# -- the form: what Zenduty (or whoever answers) said ---------------------------------------------------

@pytest.mark.parametrize("status, field, summary", [
    (401, "api_token", "Zenduty answered 401 (unauthorized): it did not accept this API token."),
    (403, "api_token", "Zenduty answered 403 (forbidden): this API token may not read teams."),
    (400, "__all__", "Zenduty answered 400 (bad request)."),
])
def test_an_error_answer_is_summarised_not_quoted(admin_client, production, listener, status, field, summary):
    production.ZENDUTY_ALLOWED_BASE_URLS = [listener.url]
    production.ZENDUTY_ALLOW_PRIVATE_ADDRESSES = True
    listener.statuses.append(status)
    listener.replies.append(b'{"detail": "ami-id: i-0abc <a href=//evil>log in again</a>", "error": "x-internal"}')

    response = admin_client.post(ADD, {"name": "ZD", "api_token": NEW_TOKEN, "base_url": listener.url})

    errors = form_errors(response)
    assert summary in " ".join(errors[field])
    assert len(listener.received) == 1
    for text in (b"ami-id", b"log in again", b"x-internal", NEW_TOKEN.encode()):
        assert text not in response.content
    assert ZendutyAccount.objects.count() == 0


# -- call time: a stored base URL is judged again ---------------------------------------------------------

def test_a_stored_base_url_outside_the_rules_is_refused_at_call_time(production, listener, recorded):
    # Stored before the rules existed, or written to the database directly.
    account = ZendutyAccount.objects.create(name="Ops", api_token=STORED_TOKEN, base_url=listener.url,
                                            status=ConnectionStatus.ACTIVE)

    with pytest.raises(errors.DestinationRefusedError, match="Only https base URLs"):
        ZendutyClient.for_account(account).list_teams()
    assert check_stored_connection(account).startswith("Only https base URLs")

    assert listener.received == []
    account.refresh_from_db()
    assert account.status == ConnectionStatus.FAILED
    assert [r.error_kind for r in recorded] == ["refused_destination", "refused_destination"]


def test_every_connection_is_checked_so_an_allowed_name_that_resolves_to_loopback_is_refused(
        production, listener, recorded):
    base_url = f"http://localhost:{listener.port}"
    production.ZENDUTY_ALLOWED_BASE_URLS = [base_url]  # the URL passes; its address does not

    with pytest.raises(errors.DestinationRefusedError, match="localhost resolves to .* a loopback address"):
        ZendutyClient(STORED_TOKEN, base_url=base_url).list_teams()

    assert listener.received == []
    assert [(r.status, r.error_kind) for r in recorded] == [(None, "refused_destination")]  # not retried


def test_private_addresses_are_reached_when_the_operator_allows_them(production, listener):
    base_url = f"http://localhost:{listener.port}"
    production.ZENDUTY_ALLOWED_BASE_URLS = [base_url]
    production.ZENDUTY_ALLOW_PRIVATE_ADDRESSES = True
    listener.replies.append(b'[{"unique_id": "t1", "name": "Operations"}]')

    assert ZendutyClient(STORED_TOKEN, base_url=base_url).list_teams() == [{"unique_id": "t1", "name": "Operations"}]
    assert [r.headers["authorization"] for r in listener.received] == [f"Token {STORED_TOKEN}"]


def test_the_sandbox_address_is_not_judged_only_the_stored_one(production, listener):
    # SANDBOX_API_URL points at this portal's own simulator: loopback over http, by design.
    production.SANDBOX_API_URL = listener.url
    listener.replies.append(b"[]")

    assert ZendutyClient(STORED_TOKEN, base_url="https://www.zenduty.com").list_teams() == []
    assert [r.path for r in listener.received] == ["/sandbox/zenduty/api/account/teams/"]

    listener.replies.append(b"[]")
    with pytest.raises(errors.DestinationRefusedError, match="Only Zenduty's own addresses"):
        ZendutyClient(STORED_TOKEN, base_url="https://zenduty.example.com").list_teams()
    assert len(listener.received) == 1


def test_the_connection_goes_to_the_address_that_was_checked_not_to_a_second_answer(production, listener,
                                                                                       monkeypatch):
    # DNS rebinding: the name answers a public address first and loopback afterwards.
    base_url = f"http://rebinding.test:{listener.port}"
    production.ZENDUTY_ALLOWED_BASE_URLS = [base_url]
    lookups, connects = [], []
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host != "rebinding.test":
            return real_getaddrinfo(host, port, *args, **kwargs)
        lookups.append(host)
        address = "93.184.215.14" if len(lookups) == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    def create_connection(address, *args, **kwargs):
        connects.append(address)
        raise ConnectionRefusedError("not on the internet in tests")  # no packet leaves the machine

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(urllib3.util.connection, "create_connection", create_connection)

    with pytest.raises(errors.NetworkError):
        ZendutyClient(STORED_TOKEN, base_url=base_url, max_retries=0).list_teams()

    assert lookups == ["rebinding.test"]
    assert connects == [("93.184.215.14", listener.port)]  # never the name, which would be looked up again
    assert listener.received == []


# -- the rules themselves ------------------------------------------------------------------------------------

@pytest.mark.parametrize("address, kind", [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"), ("::ffff:127.0.0.1", "loopback"),
    ("169.254.169.254", "link-local"), ("fe80::1%eth0", "link-local"),
    ("10.0.0.1", "private"), ("172.16.5.4", "private"), ("192.168.0.1", "private"), ("fd00::1", "private"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"), ("224.0.0.251", "multicast"),
    ("100.64.0.1", "non-public"),
    ("93.184.215.14", None), ("2606:4700:4700::1111", None),
])
def test_address_kinds(address, kind):
    assert destinations.address_kind(address) == kind


@pytest.mark.parametrize("url", [
    "https://www.zenduty.com", "https://zenduty.com", "https://staging.zenduty.com", "https://WWW.Zenduty.COM/",
    "https://www.zenduty.com.",
])
def test_zenduty_addresses_pass(url, settings):
    settings.ZENDUTY_ALLOWED_BASE_URLS = []
    assert destinations.url_problem(url) is None


@pytest.mark.parametrize("url", [
    "http://www.zenduty.com", "ftp://www.zenduty.com", "https://zenduty.com.example.net", "https://xn--zenduty.com",
    "https://www.zendutу.com",  # a Cyrillic у
    "https://www.zenduty.com/?next=1", "https://user:pass@www.zenduty.com",
])
def test_other_addresses_fail(url, settings):
    settings.ZENDUTY_ALLOWED_BASE_URLS = []
    assert destinations.url_problem(url)


def test_an_allowed_base_url_is_matched_whole(settings):
    settings.ZENDUTY_ALLOWED_BASE_URLS = ["http://proxy.internal:8080/zenduty"]
    assert destinations.url_problem("http://PROXY.internal:8080/zenduty/") is None
    assert destinations.url_problem("http://proxy.internal:8081/zenduty")
    assert destinations.url_problem("https://proxy.internal:8080/zenduty")
    assert destinations.url_problem("http://proxy.internal:8080/other")


def test_a_refused_address_is_not_described_as_an_answer_from_zenduty(production, listener):
    from integrations.services import IntegrationError, zenduty_teams

    account = ZendutyAccount.objects.create(name="Ops", api_token=STORED_TOKEN, base_url=listener.url,
                                            status=ConnectionStatus.ACTIVE)
    with pytest.raises(IntegrationError) as caught:
        zenduty_teams(account)
    assert caught.value.message.startswith("Could not list the teams and services of Zenduty account 'Ops'. "
                                           "The portal did not call Zenduty")
    assert "answered" not in caught.value.message
    assert listener.received == []
