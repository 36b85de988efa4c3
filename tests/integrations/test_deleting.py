"""Deleting an integration, a tenant or a Zenduty account that has had linked pairs, through the admin.

The pairs (and what hangs on them) go with their integration, as the models say (CASCADE), for
whoever may delete the integration; the events and calls stay in the history (SET_NULL). A pair is
never deleted on its own, and a user who may not delete the integration is still refused.
"""
from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from integrations import provisioning
from integrations.models import OutgoingIntegration
from roles import services as roles
from sandbox import deliveries
from syncengine.models import (Backfill, EventStatus, InboundEvent, LinkedPair, OutboundCall, PairNote, PairState,
                               ReconcileCursor, Source, SyncedNote)

pytestmark = pytest.mark.django_db(transaction=True)

def lacking(page: str) -> bool:
    return "have permission to delete the following types of objects" in page


def member_of(group: str, username: str) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def paired(world):
    """A provisioned integration with a linked pair (a note on it, a synced note), a backfill, a
    reconciliation cursor, and an event and a call about the pair."""
    integration = world.integration(direction="bidirectional")
    provisioning.provision(integration.pk)
    deliveries.flush(service="xurrent")  # the webhook.verify events and their callbacks
    integration.refresh_from_db()
    pair = LinkedPair.objects.create(integration=integration, tenant=world.tenant, zenduty_account=world.account,
                                     origin=Source.ZENDUTY, state=PairState.LINKED, xurrent_request_id="70001",
                                     zenduty_incident_unique_id="inc-1", zenduty_incident_number=1042)
    PairNote.objects.create(pair=pair, text="Repaired by the sweep.")
    SyncedNote.objects.create(pair=pair, direction=Source.XURRENT, xurrent_note_id="5", zenduty_note_id="z-5")
    Backfill.objects.create(integration=integration, requested_by="ops")
    ReconcileCursor.objects.create(integration=integration, xurrent_listed_until=pair.created_at)
    event = InboundEvent.objects.create(source=Source.ZENDUTY, integration=integration, pair=pair,
                                        event_type="acknowledged", object_id="inc-1", status=EventStatus.PROCESSED,
                                        reason="Acknowledged: request set in progress.")
    OutboundCall.objects.create(service="xurrent", method="PATCH", url="https://example.test/v1/requests/70001",
                                integration=integration, pair=pair, inbound_event=event, status=200)
    return integration


def delete_url(integration) -> str:
    return reverse("admin:integrations_outgoingintegration_delete", args=[integration.pk])


def assert_deleted_with_its_pairs(client, integration, world):
    page = client.get(delete_url(integration)).content.decode()
    assert not lacking(page), page
    # The confirmation lists what goes with it in the portal, besides what is removed remotely.
    assert "the tenant's Xurrent webhooks and policy" in page
    assert "Linked pair: " in page and "request #70001 ⇄ incident #1042" in page
    assert "Linked pairs: 1" in page and "Backfills: 1" in page and "Pair notes: 1" in page

    response = client.post(delete_url(integration), {"post": "yes"})
    assert response.status_code == 302, response.content.decode()[:3000]
    assert not OutgoingIntegration.objects.exists()
    # CASCADE: the pair and what hangs on it, the backfill and the cursor go with it.
    assert not LinkedPair.objects.exists() and not PairNote.objects.exists() and not SyncedNote.objects.exists()
    assert not Backfill.objects.exists() and not ReconcileCursor.objects.exists()
    # SET_NULL: the history stays, naming neither the integration nor the pair.
    event = InboundEvent.objects.get(object_id="inc-1")
    assert event.integration_id is None and event.pair_id is None
    call = OutboundCall.objects.get(url="https://example.test/v1/requests/70001")
    assert call.integration_id is None and call.pair_id is None and call.inbound_event_id == event.pk
    # Its provisioning is undone, as for an integration that never had a pair.
    assert world.remote_state() == {"webhooks": 0, "policies": 0, "zenduty_integrations": 0}


def test_a_superuser_deletes_an_integration_with_its_pairs_but_never_a_pair_alone(admin_client, paired, world):
    pair = LinkedPair.objects.get()
    pair_delete = reverse("admin:syncengine_linkedpair_delete", args=[pair.pk])
    assert admin_client.get(pair_delete).status_code == 403
    assert admin_client.post(pair_delete, {"post": "yes"}).status_code == 403
    assert LinkedPair.objects.filter(pk=pair.pk).exists()

    assert_deleted_with_its_pairs(admin_client, paired, world)


def test_an_integration_admin_deletes_an_integration_with_its_pairs_and_an_auditor_may_not(client, paired, world):
    client.force_login(member_of(roles.AUDITORS, "audrey"))
    before = world.remote_state()
    assert client.get(delete_url(paired)).status_code == 403
    assert client.post(delete_url(paired), {"post": "yes"}).status_code == 403
    assert OutgoingIntegration.objects.filter(pk=paired.pk).exists() and LinkedPair.objects.exists()
    assert world.remote_state() == before and before["webhooks"] == 4

    client.force_login(member_of(roles.INTEGRATION_ADMINS, "ida"))
    assert_deleted_with_its_pairs(client, paired, world)


def test_several_integrations_with_pairs_are_deleted_with_the_list_action(admin_client, paired, world):
    changelist = reverse("admin:integrations_outgoingintegration_changelist")
    page = admin_client.post(changelist, {"action": "delete_selected", "_selected_action": [paired.pk]})
    assert page.status_code == 200 and not lacking(page.content.decode())
    assert "request #70001 ⇄ incident #1042" in page.content.decode()
    response = admin_client.post(changelist, {"action": "delete_selected", "_selected_action": [paired.pk],
                                              "post": "yes"})
    assert response.status_code == 302
    assert not OutgoingIntegration.objects.exists() and not LinkedPair.objects.exists()
    assert world.remote_state() == {"webhooks": 0, "policies": 0, "zenduty_integrations": 0}


@pytest.mark.parametrize("name", ["connections_xurrenttenant", "connections_zendutyaccount"])
def test_a_connection_with_pairs_names_what_keeps_it_then_goes_once_its_integrations_are_gone(
        client, paired, world, name):
    client.force_login(member_of(roles.INTEGRATION_ADMINS, "ida"))
    connection = world.tenant if name == "connections_xurrenttenant" else world.account
    url = reverse(f"admin:{name}_delete", args=[connection.pk])

    # Its integrations protect it (PROTECT): the page names them rather than blaming permissions.
    page = client.get(url).content.decode()
    assert not lacking(page), page
    assert "would require deleting the following protected related objects" in page
    assert "Website ⇄ Website (Production)" in page
    assert client.post(url, {"post": "yes"}).status_code == 200  # the same page again: nothing deleted
    assert type(connection).objects.filter(pk=connection.pk).exists()

    assert client.post(delete_url(paired), {"post": "yes"}).status_code == 302
    assert client.post(url, {"post": "yes"}).status_code == 302
    assert not type(connection).objects.filter(pk=connection.pk).exists()


def test_an_integration_kept_by_the_list_action_is_neither_logged_nor_counted_as_deleted(admin_client, paired,
                                                                                          world):
    from django.contrib.admin.models import DELETION, LogEntry

    from sandbox import faults

    other = world.integration(service=world.second_service, instance=world.other_instance)
    provisioning.provision(other.pk)
    other.refresh_from_db()
    # Zenduty cannot remove the other integration's outgoing webhook.
    faults.inject("zenduty", "error_500", count=10, method="DELETE",
                  path_prefix=f"/api/account/teams/{other.zenduty_team_id}/services/{other.zenduty_service_id}/")
    changelist = reverse("admin:integrations_outgoingintegration_changelist")

    response = admin_client.post(changelist, {"action": "delete_selected", "_selected_action": [paired.pk, other.pk],
                                              "post": "yes"}, follow=True)

    page = response.content.decode()
    assert f"{other} was not deleted" in page and "1 integration was kept; see above." in page
    assert "Successfully deleted 1 outgoing integration." in page
    assert list(OutgoingIntegration.objects.values_list("pk", flat=True)) == [other.pk]
    assert list(LogEntry.objects.filter(action_flag=DELETION).values_list("object_id", flat=True)) == [str(paired.pk)]


def test_the_delete_page_shows_no_template_source(admin_client, paired):
    page = admin_client.get(reverse("admin:integrations_outgoingintegration_delete", args=[paired.pk]))

    assert page.status_code == 200 and "These are deleted with it in the portal" in page.content.decode()
    assert "{#" not in page.content.decode() and "{%" not in page.content.decode()
