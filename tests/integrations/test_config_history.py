"""Who changed what (connections.changes): each field's old and new value in the admin's log,
secrets only as "changed", readable by auditors on each object's history and on one list."""
from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group, User
from django.db import connection
from django.urls import reverse

from connections import changes
from connections.models import XurrentTenant, ZendutyAccount
from integrations.models import Direction, OutgoingIntegration
from roles.services import AUDITORS
from tests.integrations.test_admin import ADD, errors_of, mapping_fields, post_change, step2_data

pytestmark = pytest.mark.django_db(transaction=True)

NEW_TOKEN = "rotated-zenduty-token-7c2e"
SECRET_CHANGED = "changed (the value is never recorded)"


def auditor_client(client):
    user = User.objects.create_user("audrey", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=AUDITORS))
    client.force_login(user)
    return client


def stored_ciphertext(table: str, column: str, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])  # noqa: S608 - names are the test's
        return cursor.fetchone()[0]


def test_who_changed_which_field_of_a_connection_and_a_secret_only_as_changed(world, admin_client, client):
    from sandbox.zenduty.demo import add_api_key
    from sandbox.zenduty.models import ApiKey

    key = ApiKey.objects.first()
    add_api_key(key.account, key.user, NEW_TOKEN)  # the simulated Zenduty accepts the rotated token
    account = world.account
    old_ciphertext = stored_ciphertext("connections_zendutyaccount", "api_token", account.pk)
    response = admin_client.post(reverse("admin:connections_zendutyaccount_change", args=[account.pk]),
                                 {"name": "Zenduty (production)", "api_token": NEW_TOKEN, "base_url": account.base_url})
    assert response.status_code == 302, response.content.decode()[:3000]
    new_ciphertext = stored_ciphertext("connections_zendutyaccount", "api_token", account.pk)
    assert new_ciphertext.startswith("fernet:") and new_ciphertext != old_ciphertext

    entry = LogEntry.objects.get(object_id=str(account.pk), content_type__model="zendutyaccount")
    assert entry.user.username == "admin"
    assert changes.differences_of(entry.change_message)["differences"] == [
        {"field": "Name", "old": "Demo Zenduty", "new": "Zenduty (production)"},
        {"field": "API token", "secret": True},
    ]
    forbidden = ("demo-zenduty-token", NEW_TOKEN, old_ciphertext, new_ciphertext, "fernet:")
    assert not [s for s in forbidden if s in entry.change_message]

    auditor_client(client)
    for url in (reverse("admin:connections_zendutyaccount_history", args=[account.pk]),
                reverse("admin:roles_configchange_changelist")):
        page = client.get(url)
        assert page.status_code == 200, url
        html = page.content.decode()
        for text in ("admin", "Name", "Demo Zenduty", "Zenduty (production)", "API token", SECRET_CHANGED):
            assert text in html, f"{url}: {text!r} missing"
        assert not [s for s in forbidden if s in html], url


def test_a_connection_saved_without_a_new_secret_records_no_secret_change(world, admin_client):
    tenant = world.tenant
    response = admin_client.post(reverse("admin:connections_xurrenttenant_change", args=[tenant.pk]), {
        "name": "WDC", "account_id": tenant.account_id, "client_id": tenant.client_id, "client_secret": "",
        "region": tenant.region, "environment": tenant.environment})
    assert response.status_code == 302, response.content.decode()[:3000]
    entry = LogEntry.objects.get(content_type__model="xurrenttenant")
    # Only the name: not the blank secret ("keep"), nor the status the live check wrote.
    assert changes.differences_of(entry.change_message)["differences"] == [
        {"field": "Name", "old": "Widget Data Center", "new": "WDC"}]


def test_an_integrations_changes_buttons_and_pasted_key_are_in_its_history(world, admin_client, client):
    assert admin_client.post(ADD, step2_data(world)).status_code == 302
    integration = OutgoingIntegration.objects.get()
    change = reverse("admin:integrations_outgoingintegration_change", args=[integration.pk])
    response = post_change(admin_client, change, step2_data(world, direction=Direction.ZENDUTY_TO_XURRENT, enabled="on",
                                                             new_zenduty_signing_secret="key-from-zenduty"))
    assert response.status_code == 302, errors_of(response)
    assert admin_client.post(reverse("admin:integrations_outgoingintegration_disable",
                                     args=[integration.pk])).status_code == 302

    added, changed, disabled = LogEntry.objects.filter(content_type__model="outgoingintegration").order_by("pk")
    assert added.is_addition() and {"field": "Direction", "old": "—", "new": "Both ways"} in \
        changes.differences_of(added.change_message)["differences"]
    assert changes.differences_of(changed.change_message)["differences"] == [
        {"field": "Direction", "old": "Both ways", "new": "Zenduty → Xurrent (incidents create requests)"},
        {"field": "Zenduty signing secret", "secret": True},
    ]
    assert changes.differences_of(disabled.change_message) == {
        "differences": [{"field": "Enabled", "old": "yes", "new": "no"}], "note": "Disabled with the button."}

    auditor_client(client)
    html = client.get(reverse("admin:integrations_outgoingintegration_history", args=[integration.pk])).content.decode()
    for text in ("Zenduty → Xurrent (incidents create requests)", "Zenduty signing secret", SECRET_CHANGED,
                 "set (the value is never recorded)", "Disabled with the button.", "Enabled"):
        assert text in html
    assert "key-from-zenduty" not in html and "fernet:" not in html


def test_a_changed_priority_mapping_records_the_changed_priority_by_name(world, admin_client, client):
    impacts = ["top", "high", "medium", "low", "low"]
    data = step2_data(world, use_custom_mapping="on", **mapping_fields(world, "Operations", impacts))
    assert admin_client.post(ADD, data).status_code == 302
    integration = OutgoingIntegration.objects.get()
    change = reverse("admin:integrations_outgoingintegration_change", args=[integration.pk])
    changed = dict(data, enabled="on", **mapping_fields(world, "Operations", ["top", "high", "medium", "low", "medium"]))
    response = post_change(admin_client, change, changed)
    assert response.status_code == 302, errors_of(response)

    added, changed_entry = LogEntry.objects.filter(content_type__model="outgoingintegration").order_by("pk")
    assert {"field": "Priority mapping", "old": "—",
            "new": "P1 → top; P2 → high; P3 → medium; P4 → low; P5 → low"} in \
        changes.differences_of(added.change_message)["differences"]
    # Only the entry that changed, named as the team names it, not by its UUID.
    assert changes.differences_of(changed_entry.change_message)["differences"] == [
        {"field": "Priority mapping", "old": "P5 → low", "new": "P5 → medium"}]
    assert not [pid for pid in world.priority_ids("Operations") if pid in changed_entry.change_message]

    auditor_client(client)
    for url in (reverse("admin:integrations_outgoingintegration_history", args=[integration.pk]),
                reverse("admin:roles_configchange_changelist")):
        html = client.get(url).content.decode()
        assert "P5 → low" in html and "P5 → medium" in html, url


def test_a_long_value_is_shortened_around_what_changed():
    shared = "x" * 400
    old, new = changes.shorten_pair(shared + "before" + shared, shared + "after" + shared)
    assert old != new and "before" in old and "after" in new
    assert len(old) <= changes.MAX_VALUE_CHARS + 2 and old.startswith("…") and old.endswith("…")
    assert changes.shorten_pair("short", "other") == ("short", "other")


def test_differences_list_a_new_rows_fields_and_its_secret_only_as_set(db):
    tenant = XurrentTenant(name="New", account_id="new", client_id="cid", client_secret="s3cret")
    found = changes.differences(None, tenant, excluded=("status",))
    assert {"field": "Client secret", "secret": True} in found
    assert {"field": "Account ID", "old": "—", "new": "new"} in found
    assert "s3cret" not in str(found)
    assert not [d for d in found if d["field"] == "Status"]

    tenant.save()
    same = XurrentTenant.objects.get(pk=tenant.pk)
    assert changes.differences(changes.stored(tenant), same) == []


def test_the_configuration_changes_list_is_read_only_for_everyone(admin_client, world):
    ZendutyAccount.objects.update(name="x")
    entry = LogEntry.objects.create(user=User.objects.get(username="admin"), content_type_id=None, object_id="1",
                                    object_repr="something", action_flag=2, change_message="[]")
    assert admin_client.get(reverse("admin:roles_configchange_change", args=[entry.pk])).status_code == 200
    assert admin_client.get(reverse("admin:roles_configchange_delete", args=[entry.pk])).status_code == 403
    listing = admin_client.get(reverse("admin:roles_configchange_changelist")).content.decode()
    assert '<select name="action"' not in listing
