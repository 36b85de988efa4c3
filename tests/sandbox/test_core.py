"""The sandbox plumbing: faults on demand, rate counters and the webhook outbox."""
import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from sandbox import deliveries, faults
from sandbox.models import DeliveryState, Fault, FaultKind, OutboundDelivery
from tests.receiver import Receiver


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


def send(receiver, body="{}", **kw):
    kw.setdefault("fresh_id_header", "x-xurrent-delivery")
    return deliveries.enqueue("xurrent", receiver.url + "/hook", body, headers={"content-type": "application/json"},
                              **kw)


@pytest.mark.django_db
def test_deliveries_wait_in_the_outbox_until_sent(receiver):
    send(receiver, json.dumps({"n": 1}))
    assert receiver.received == []  # never inside the call that caused it
    sent = deliveries.flush()
    assert len(sent) == 1
    assert json.loads(receiver.received[0].body) == {"n": 1}
    assert OutboundDelivery.objects.get().state == DeliveryState.DELIVERED


@pytest.mark.django_db
def test_failed_deliveries_are_retried_with_a_new_delivery_id_then_given_up(receiver):
    receiver.statuses = [500, 503, 500]
    (row,) = send(receiver, max_attempts=3)
    first_id = row.headers["x-xurrent-delivery"]
    deliveries.flush(rounds=5)
    row.refresh_from_db()
    assert row.state == DeliveryState.FAILED
    assert row.attempts == 3
    ids = [r.headers["x-xurrent-delivery"] for r in receiver.received]
    assert len(set(ids)) == 3 and ids[0] == first_id
    assert all(r.headers["x-xurrent-delivery-origin"] == first_id for r in receiver.received[1:])


@pytest.mark.django_db
def test_a_retry_is_scheduled_with_backoff(receiver):
    receiver.statuses = [500]
    (row,) = send(receiver)
    assert deliveries.deliver_due() == 1
    row.refresh_from_db()
    assert row.state == DeliveryState.PENDING and row.next_attempt_at > row.created_at
    assert deliveries.deliver_due() == 0  # not due yet
    deliveries.flush()
    row.refresh_from_db()
    assert row.state == DeliveryState.DELIVERED


@pytest.mark.django_db
def test_drop_duplicate_and_reorder_faults(receiver):
    faults.inject("xurrent", FaultKind.DROP_DELIVERY)
    send(receiver, '"dropped"')
    faults.inject("xurrent", FaultKind.DUPLICATE_DELIVERY)
    send(receiver, '"twice"')
    faults.inject("xurrent", FaultKind.REORDER_DELIVERY)
    send(receiver, '"held"')
    send(receiver, '"after"')
    deliveries.flush()
    bodies = [json.loads(r.body) for r in receiver.received]
    assert bodies == ["twice", "twice", "after", "held"]
    twice = [r for r in receiver.received if r.body == b'"twice"']
    assert twice[0].headers["x-xurrent-delivery"] == twice[1].headers["x-xurrent-delivery"]
    assert OutboundDelivery.objects.filter(state=DeliveryState.DROPPED).count() == 1


@pytest.mark.django_db
def test_api_faults_are_consumed_in_order_and_match_paths():
    faults.inject("zenduty", FaultKind.ERROR_500, count=2, path_prefix="/api/incidents/")
    assert faults.api_fault_response("zenduty", "GET", "/api/account/teams/", error_body={},
                                     rate_limited_body={}) is None
    first = faults.api_fault_response("zenduty", "GET", "/api/incidents/1/", error_body={"detail": "x"},
                                      rate_limited_body={})
    assert first.status_code == 500
    faults.api_fault_response("zenduty", "POST", "/api/incidents/", error_body={}, rate_limited_body={})
    assert faults.api_fault_response("zenduty", "GET", "/api/incidents/1/", error_body={},
                                     rate_limited_body={}) is None


@pytest.mark.django_db
def test_a_429_fault_carries_retry_after():
    faults.inject("xurrent", FaultKind.RATE_LIMIT_429, retry_after=7)
    response = faults.api_fault_response("xurrent", "GET", "/v1/requests", error_body={},
                                         rate_limited_body={"message": "Too Many Requests"})
    assert response.status_code == 429 and response["Retry-After"] == "7"


@pytest.mark.django_db
def test_rate_counter_allows_the_budget_then_refuses():
    results = [faults.hit_rate_limit("k", 3, 60) for _ in range(4)]
    assert [r[0] for r in results] == [True, True, True, False]
    assert [r[1] for r in results] == [2, 1, 0, 0]


def test_unknown_fault_kind_is_refused():
    with pytest.raises(ValueError, match="unknown fault kind"):
        faults.inject("xurrent", "explode")


@pytest.mark.django_db
@pytest.mark.parametrize("narrowing", [{"path_prefix": "/api/incidents/"}, {"method": "POST"}])
def test_a_delivery_fault_cannot_be_narrowed_by_path_or_method(narrowing):
    # Deliveries have no API path or method: such a fault could never fire.
    with pytest.raises(ValueError, match="leave the path and the method empty"):
        faults.inject("zenduty", FaultKind.REORDER_DELIVERY, **narrowing)
    assert not Fault.objects.exists()


@pytest.mark.django_db
def test_the_faults_page_refuses_a_narrowed_delivery_fault_and_says_why(admin_client):
    form = {"service": "zenduty", "kind": FaultKind.DROP_DELIVERY, "count": 1, "path_prefix": "/api/incidents/",
            "method": "POST", "latency_ms": 0, "retry_after": 30}
    response = admin_client.post(reverse("sandbox-faults"), form)

    assert response.status_code == 200
    assert "leave the path and the method empty" in response.content.decode()
    assert not Fault.objects.exists()
    admin_client.post(reverse("sandbox-faults"), {**form, "path_prefix": "", "method": ""})
    assert Fault.objects.get().kind == FaultKind.DROP_DELIVERY


@pytest.mark.django_db
def test_a_held_delivery_waits_for_the_next_one_to_the_same_address_as_the_sender_thread_sends(receiver, settings):
    settings.SANDBOX_REORDER_HOLD_SECONDS = 60
    faults.inject("xurrent", FaultKind.REORDER_DELIVERY)
    send(receiver, '"held"')
    assert deliveries.run_once() == 0  # what the thread does on each wake-up: the held one stays
    assert receiver.received == []

    send(receiver, '"after"')
    assert deliveries.run_once() == 2

    assert [json.loads(r.body) for r in receiver.received] == ["after", "held"]


@pytest.mark.django_db
def test_a_held_delivery_goes_out_by_itself_once_the_hold_time_has_passed(receiver, settings):
    settings.SANDBOX_REORDER_HOLD_SECONDS = 5
    faults.inject("xurrent", FaultKind.REORDER_DELIVERY)
    (held,) = send(receiver, '"held"')
    assert held.next_attempt_at >= held.created_at + timedelta(seconds=4)
    deliveries.enqueue("xurrent", receiver.url + "/elsewhere", '"elsewhere"')
    deliveries.run_once()
    assert [r.path for r in receiver.received] == ["/elsewhere"]  # another address does not release it

    OutboundDelivery.objects.filter(pk=held.pk).update(next_attempt_at=held.created_at)  # the hold time is over
    assert deliveries.run_once() == 1
    assert [json.loads(r.body) for r in receiver.received] == ["elsewhere", "held"]


@pytest.mark.django_db
def test_a_delivery_left_sending_by_a_crash_is_sent_again_once_its_lease_has_run_out(receiver, monkeypatch):
    (row,) = send(receiver, '"survives"')

    def crash(delivery):
        raise RuntimeError("the process died mid-send")

    monkeypatch.setattr(deliveries, "send_one", crash)
    with pytest.raises(RuntimeError):
        deliveries.run_once()
    monkeypatch.undo()
    row.refresh_from_db()
    assert row.state == DeliveryState.SENDING
    lease = timedelta(seconds=deliveries.SENDING_LEASE_SECONDS)
    assert row.next_attempt_at > timezone.now() + lease - timedelta(seconds=10)

    assert deliveries.recover_stalled() == 0  # within its lease another sender may still be at it
    OutboundDelivery.objects.filter(pk=row.pk).update(next_attempt_at=row.next_attempt_at - lease)  # lease over
    assert deliveries.recover_stalled() == 1
    row.refresh_from_db()
    assert row.state == DeliveryState.PENDING
    deliveries.run_once()
    row.refresh_from_db()
    assert row.state == DeliveryState.DELIVERED and [r.body for r in receiver.received] == [b'"survives"']


@pytest.fixture
def sender_starts(monkeypatch, settings):
    """Thread starts the first request asks for (none is started); the once-per-process check made anew."""
    settings.SANDBOX_DELIVERY_THREAD = True
    started = []
    monkeypatch.setattr(deliveries, "_ensure_thread", lambda: started.append(True))
    monkeypatch.setattr(deliveries, "_resume_checked", False)
    return started


@pytest.mark.django_db
@pytest.mark.parametrize("state", [DeliveryState.PENDING, DeliveryState.SENDING])
def test_the_first_request_after_a_restart_starts_the_sender_when_deliveries_wait(client, sender_starts, state):
    OutboundDelivery.objects.create(service="xurrent", url="http://127.0.0.1:9/hook", body="{}", state=state)

    client.get(reverse("sandbox-index"))
    client.get(reverse("sandbox-index"))

    assert sender_starts == [True]  # checked once per process


@pytest.mark.django_db
def test_the_first_request_starts_no_sender_when_nothing_waits_or_the_thread_is_off(client, sender_starts,
                                                                                   settings):
    OutboundDelivery.objects.create(service="xurrent", url="http://127.0.0.1:9/hook", body="{}",
                                    state=DeliveryState.DELIVERED)
    client.get(reverse("sandbox-index"))
    assert sender_starts == []

    settings.SANDBOX_DELIVERY_THREAD = False
    deliveries._resume_checked = False
    OutboundDelivery.objects.create(service="xurrent", url="http://127.0.0.1:9/hook", body="{}")
    client.get(reverse("sandbox-index"))
    assert sender_starts == []


@pytest.mark.django_db
def test_the_by_hand_pages_need_a_staff_login_and_the_apis_stay_open(client, django_user_model):
    pages = [reverse(name) for name in ("sandbox-index", "sandbox-faults", "sandbox-deliveries",
                                        "sandbox-xurrent-ui", "zenduty-ui", "zenduty-ui-services",
                                        "zenduty-ui-settings")]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], url
    assert client.post(reverse("sandbox-faults"), {"service": "xurrent", "kind": "error_500", "count": 1}) \
        .status_code == 302
    assert not Fault.objects.exists()

    # The simulated services answer as the real ones do: with their own authentication, not a login page.
    assert client.get("/sandbox/xurrent/xurrent.com/v1/me").status_code == 401
    assert client.get("/sandbox/zenduty/api/account/teams/").status_code == 401
    assert client.post("/sandbox/xurrent/xurrent.com/oauth/token", {"grant_type": "client_credentials"}).status_code in (400, 401)

    from django.contrib.auth.models import Permission

    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    client.force_login(staff)
    for url in pages:  # (the services page sends a person to the incident list while no demo is seeded)
        response = client.get(url)
        assert response.status_code in (200, 302) and "/admin/login/" not in response.get("Location", ""), url
    # A view-only user looks but cannot act: no form to post, and a post is refused.
    faults_page = client.get(reverse("sandbox-faults")).content.decode()
    assert "only integration admins may act" in faults_page
    for url in pages:
        assert 'method="post"' not in client.get(url, follow=True).content.decode(), url
    refused = client.post(reverse("sandbox-faults"), {"service": "xurrent", "kind": "error_500", "count": 1})
    assert refused.status_code == 403 and not Fault.objects.exists()
    assert client.post(reverse("zenduty-ui"), {"seed": "1"}).status_code == 403

    staff.user_permissions.add(Permission.objects.get(codename="change_outgoingintegration"))
    staff = django_user_model.objects.get(pk=staff.pk)
    client.force_login(staff)
    assert "only integration admins may act" not in client.get(reverse("sandbox-faults")).content.decode()
    client.post(reverse("sandbox-faults"), {"service": "xurrent", "kind": "error_500", "count": 1,
                                            "latency_ms": 0, "retry_after": 30})
    assert Fault.objects.exists()


@pytest.mark.django_db
def test_look_only_staff_get_every_by_hand_page_without_a_form_they_would_be_refused(client, django_user_model):
    """Issue #12: no button that would be refused is shown; integration admins get them all."""
    from django.contrib.auth.models import Permission

    from sandbox.xurrent import demo as xurrent_demo
    from sandbox.xurrent.models import Request, ServiceInstance
    from sandbox.zenduty import demo as zenduty_demo
    from sandbox.zenduty import operations

    world = zenduty_demo.seed()
    account = xurrent_demo.seed()
    incident = operations.create_incident(service=world.website, title="Disk full", summary="")
    request = Request.objects.create(account=account, subject="Slow", category="incident", impact="low",
                                     service_instance=ServiceInstance.objects.get(name="Website (Production)"),
                                     requested_by=account.ui_person(), created_by=account.ui_person())
    pages = [reverse("sandbox-faults"), reverse("sandbox-deliveries"), reverse("zenduty-ui"),
             reverse("zenduty-ui-incident", args=[incident.pk]), reverse("zenduty-ui-settings"),
             reverse("zenduty-ui-service-webhooks", args=[world.website.pk]),
             reverse("sandbox-xurrent-ui"), reverse("sandbox-xurrent-ui-request", args=[request.pk])]
    staff = django_user_model.objects.create_user("looker", password="pw", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    client.force_login(staff)
    for url in pages:
        page = client.get(url)
        assert page.status_code == 200 and 'method="post"' not in page.content.decode(), url

    staff.user_permissions.add(Permission.objects.get(codename="change_outgoingintegration"))
    client.force_login(django_user_model.objects.get(pk=staff.pk))
    for url in pages:
        assert 'method="post"' in client.get(url).content.decode(), url


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["sandbox-index", "sandbox-faults", "sandbox-deliveries"])
def test_the_pages_print_no_template_comment(admin_client, name):
    """A {# #} comment is one line only: a longer one would be printed as it is, at the top of every page."""
    page = admin_client.get(reverse(name))
    assert page.status_code == 200
    assert "{#" not in page.content.decode() and "#}" not in page.content.decode()
