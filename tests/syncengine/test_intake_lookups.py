"""The intake keeps the targets it looked up for a few seconds (``syncengine.intake._RecentTargets``):
a copy that went stale in another process must never refuse, lose or misfile a delivery.

"Another process" is played by changing the row without the model's signals (``QuerySet.update`` or
raw SQL), which is all this process would see of a change made elsewhere.
"""
from __future__ import annotations

import json

import pytest
from django.db import connection
from django_q.models import OrmQ

from integrations.models import OutgoingIntegration
from syncengine import intake, jobs
from syncengine.models import EventStatus, InboundEvent
from tests.syncengine.conftest import fixture_bytes, fixture_json, sign_zenduty

NEW_SECRET = "rotated-signing-secret-b81f07"


@pytest.fixture(autouse=True)
def _fresh_lookups():
    intake._recent.clear()
    yield
    intake._recent.clear()


@pytest.mark.usefixtures("sync_handlers")
class TestAStaleCopyIsHarmless:
    def test_a_secret_rotated_elsewhere_is_accepted_at_once(self, integration, post_zenduty):
        assert intake.find_integration(integration.public_id) is not None  # this process keeps a copy
        OutgoingIntegration.objects.filter(pk=integration.pk).update(zenduty_signing_secret=NEW_SECRET)

        body = fixture_bytes("zenduty/acknowledged.json")
        response = post_zenduty(integration, body, signature=sign_zenduty(body, NEW_SECRET))

        assert response.status_code == 200, response.json()
        assert response.json()["status"] == "accepted"

    def test_the_old_secret_is_refused_once_the_copy_expires(self, integration, post_zenduty, monkeypatch):
        monkeypatch.setattr(intake, "LOOKUP_TTL", 0.0)
        assert intake.find_integration(integration.public_id) is not None  # a copy that expires at once
        OutgoingIntegration.objects.filter(pk=integration.pk).update(zenduty_signing_secret=NEW_SECRET)

        response = post_zenduty(integration, fixture_bytes("zenduty/acknowledged.json"))  # signed with the old one

        assert response.status_code == 401
        assert InboundEvent.objects.get(pk=response.json()["event"]).status == EventStatus.REJECTED

    def test_a_policy_key_provisioned_elsewhere_verifies_the_next_delivery(self, integration, post_xurrent,
                                                                           sign_xurrent):
        key = integration.xurrent_policy_public_key
        OutgoingIntegration.objects.filter(pk=integration.pk).update(xurrent_policy_public_key="")
        assert intake.find_integration(integration.public_id).xurrent_policy_public_key == ""
        OutgoingIntegration.objects.filter(pk=integration.pk).update(xurrent_policy_public_key=key)

        response = post_xurrent(integration, sign_xurrent("request.update"))

        assert response.status_code == 200, response.json()
        assert response.json()["status"] == "accepted"

    def test_a_save_in_this_process_is_seen_by_the_next_delivery(self, integration, post_zenduty):
        assert intake.find_integration(integration.public_id).enabled
        integration.enabled = False
        integration.save()

        response = post_zenduty(integration, fixture_bytes("zenduty/acknowledged.json"))

        assert response.json()["status"] == "ignored"

    def test_addresses_that_name_nothing_are_not_kept(self, integration, client):
        import uuid

        for _ in range(3):
            assert intake.find_integration(uuid.uuid4()) is None
        assert intake._recent._found == {}


@pytest.mark.django_db(transaction=True)
def test_a_delivery_for_an_integration_deleted_elsewhere_is_404_and_stores_nothing(integration, client):
    """Autocommit, as a web request runs: the event's foreign key is checked when its INSERT commits."""
    assert intake.find_integration(integration.public_id) is not None  # this process keeps a copy
    with connection.cursor() as cursor:  # deleted by another process: no signal here
        cursor.execute(f"DELETE FROM {OutgoingIntegration._meta.db_table} WHERE id = %s", [integration.pk])
    body = fixture_bytes("zenduty/triggered.json")

    response = client.post(f"/webhooks/zenduty/{integration.public_id}/", data=body,
                           content_type="application/json", HTTP_X_SIGNATURE=sign_zenduty(body))

    assert response.status_code == 404, response.content
    assert response.json()["status"] == "unknown"
    assert not InboundEvent.objects.exists()
    assert not OrmQ.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_refused_delivery_for_an_integration_deleted_elsewhere_is_404(integration, client):
    assert intake.find_integration(integration.public_id) is not None
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {OutgoingIntegration._meta.db_table} WHERE id = %s", [integration.pk])

    response = client.post(f"/webhooks/zenduty/{integration.public_id}/", data=json.dumps(fixture_json(
        "zenduty/triggered.json")), content_type="application/json", HTTP_X_SIGNATURE="bm90IGl0")

    assert response.status_code == 404
    assert not InboundEvent.objects.exists()


def test_one_broker_per_process(monkeypatch, db):
    """django-q2 builds a broker per ``async_task`` unless given one (with Redis, a new connection each)."""
    made = []
    real = jobs.get_broker
    monkeypatch.setattr(jobs, "get_broker", lambda: made.append(1) or real())
    monkeypatch.setattr(jobs, "_brokers", {})

    first, second = jobs._broker(), jobs._broker()
    monkeypatch.setattr(jobs.os, "getpid", lambda: -1)  # as in a process forked after the first call
    third = jobs._broker()

    assert first is second
    assert third is not first
    assert len(made) == 2

