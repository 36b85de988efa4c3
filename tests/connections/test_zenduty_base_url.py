"""The Zenduty account form against a local listener standing in for whatever a base URL points at."""
import pytest

from connections.models import ZendutyAccount
from tests.receiver import Receiver

pytestmark = pytest.mark.django_db

ADD = "/admin/connections/zendutyaccount/add/"
NEW_TOKEN = "typed-again-zenduty-token-9b2e"


@pytest.fixture
def production(settings):
    """No simulator standing in: calls go where the stored base URL says."""
    settings.SANDBOX_API_URL = ""
    settings.EXTERNAL_API_CONNECT_TIMEOUT = 0.5  # a refused address that slipped through fails fast
    return settings


@pytest.fixture
def listener():
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


def form_errors(response):
    assert response.status_code == 200, response.get("Location")
    return response.context["adminform"].form.errors


# -- the form: what Zenduty (or whoever answers) said ---------------------------------------------------

@pytest.mark.parametrize("status, field, summary", [
    (401, "api_token", "Zenduty answered 401 (unauthorized): it did not accept this API token."),
    (403, "api_token", "Zenduty answered 403 (forbidden): this API token may not read teams."),
    (400, "__all__", "Zenduty answered 400 (bad request)."),
])
def test_an_error_answer_is_summarised_not_quoted(admin_client, production, listener, status, field, summary):
    listener.statuses.append(status)
    listener.replies.append(b'{"detail": "ami-id: i-0abc <a href=//evil>log in again</a>", "error": "x-internal"}')

    response = admin_client.post(ADD, {"name": "ZD", "api_token": NEW_TOKEN, "base_url": listener.url})

    errors = form_errors(response)
    assert summary in " ".join(errors[field])
    assert len(listener.received) == 1
    for text in (b"ami-id", b"log in again", b"x-internal", NEW_TOKEN.encode()):
        assert text not in response.content
    assert ZendutyAccount.objects.count() == 0
