"""The two staff roles (roles.services), page by page and action by action.

An auditor (a staff user in "Auditors") opens every admin page and is shown
nothing that would be refused: no form that posts (but logging out), no add or
delete link, no action. Everything that writes or calls out is refused with
the styled page and changes nothing. An integration admin ("Integration
admins") does what the role says, and no more.
"""
from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, Permission, User
from django.urls import reverse
from django.utils import timezone

from integrations import provisioning
from roles import services as roles
from sandbox import deliveries
from syncengine.models import EventStatus, InboundEvent, LinkedPair, OutboundCall, PairState, Source

pytestmark = pytest.mark.django_db(transaction=True)

REFUSED = "You may look, but not do this"


def member_of(group: str, username: str) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def history(world):
    """A provisioned integration with events, calls, a linked pair and an admin's change in the log."""
    integration = world.integration(direction="bidirectional")
    provisioning.provision(integration.pk)
    deliveries.flush(service="xurrent")  # webhook.verify events, their callbacks and calls
    integration.refresh_from_db()
    pair = LinkedPair.objects.create(integration=integration, tenant=world.tenant, zenduty_account=world.account,
                                     origin=Source.ZENDUTY, state=PairState.LINKED, xurrent_request_id="70001",
                                     zenduty_incident_unique_id="inc-1", zenduty_incident_number=1042)
    InboundEvent.objects.create(source=Source.ZENDUTY, integration=integration, pair=pair,
                                event_type="acknowledged", object_id="inc-1",
                                status=EventStatus.PROCESSED, reason="Acknowledged: request set in progress.")
    assert OutboundCall.objects.exists()
    return integration


def admin_pages():
    """(label, url) of the index, each app's page, each registered list and each row's change and history page."""
    yield "index", reverse("admin:index")
    for label in sorted({model._meta.app_label for model in admin.site._registry}):
        yield f"{label} app", reverse("admin:app_list", args=[label])
    for model in admin.site._registry:
        info = model._meta.app_label, model._meta.model_name
        yield f"{model.__name__} list", reverse("admin:%s_%s_changelist" % info)
        for pk in model.objects.order_by("pk").values_list("pk", flat=True)[:5]:
            yield f"{model.__name__} {pk}", reverse("admin:%s_%s_change" % info, args=[pk])
            yield f"{model.__name__} {pk} history", reverse("admin:%s_%s_history" % info, args=[pk])
    yield "dashboard", reverse("sync_dashboard")


def write_controls(html: str) -> list[str]:
    """What would post a change in a page: a posting form with a button (logging out aside), add,
    delete and password-reset links, the actions menu. (Django wraps lists and view-only pages in a form with no button.)"""
    found = []
    for form, body in re.findall(r'(<form[^>]*method="post"[^>]*>)(.*?)</form>', html, re.IGNORECASE | re.DOTALL):
        if f'action="{reverse("admin:logout")}"' in form:
            continue
        body = re.sub(r"<script.*?</script>", "", body, flags=re.DOTALL)
        if re.search(r'type="submit"|<button(?![^>]*type="button")', body):
            found.append(f"{form} with a button")
    found += re.findall(r'href="[^"]*/(?:add|delete)/[^"]*"', html)
    found += re.findall(r'href="[^"]*/password/"', html)  # a user's "Reset password" (its page refuses)
    found += re.findall(r'<select name="action"', html)
    return found


def snapshot():
    """Every row of every registered model, to prove that nothing changed."""
    return {model.__name__: list(model.objects.order_by("pk").values()) for model in admin.site._registry}


# -- the roles themselves ---------------------------------------------------------------------
def test_the_migration_creates_both_roles_with_their_permissions():
    auditors = Group.objects.get(name=roles.AUDITORS)
    integration_admins = Group.objects.get(name=roles.INTEGRATION_ADMINS)
    every_view = set(Permission.objects.filter(codename__startswith="view_"))

    assert set(auditors.permissions.all()) == every_view
    assert set(integration_admins.permissions.filter(codename__startswith="view_")) == every_view
    assert sorted(integration_admins.permissions.exclude(codename__startswith="view_")
                  .values_list("content_type__app_label", "codename")) == sorted([
                      ("connections", f"{action}_{model}") for action in ("add", "change", "delete")
                      for model in ("xurrenttenant", "zendutyaccount")] + [
                      ("integrations", f"{action}_outgoingintegration") for action in ("add", "change", "delete")] + [
                      ("syncengine", "change_inboundevent")])


def test_applying_the_roles_again_keeps_what_was_added_by_hand():
    auditors = Group.objects.get(name=roles.AUDITORS)
    extra = Permission.objects.get(codename="change_linkedpair")
    auditors.permissions.add(extra)
    auditors.permissions.remove(Permission.objects.get(codename="view_inboundevent"))

    roles.apply_roles()

    assert extra in auditors.permissions.all()
    assert auditors.permissions.filter(codename="view_inboundevent").exists()
    assert Group.objects.filter(name=roles.AUDITORS).count() == 1


# -- auditors ------------------------------------------------------------------------------------
def test_an_auditor_opens_every_page_and_is_offered_nothing_that_writes(history, client):
    client.force_login(member_of(roles.AUDITORS, "audrey"))
    pages = list(admin_pages())
    assert len(pages) > 30
    for label, url in pages:
        response = client.get(url)
        assert response.status_code == 200, f"{label} ({url}) answered {response.status_code}"
        html = response.content.decode()
        assert not write_controls(html), f"{label} ({url}) offers {write_controls(html)}"
    panel = client.get(reverse("admin:integrations_outgoingintegration_panel", args=[history.pk]))
    assert panel.status_code == 200 and not write_controls(panel.content.decode())


def test_an_auditor_sees_how_a_password_is_stored_but_no_reset_button(client, admin_client):
    auditor = member_of(roles.AUDITORS, "audrey")
    url = reverse("admin:auth_user_change", args=[auditor.pk])
    client.force_login(auditor)
    page = client.get(url).content.decode()
    assert "algorithm" in page and "Reset password" not in page and "../password/" not in page
    assert client.get(reverse("admin:auth_user_password_change", args=[auditor.pk])).status_code == 403

    assert "Reset password" in admin_client.get(url).content.decode()  # a superuser still may


def test_an_auditor_can_run_no_admin_action(history, client, rf):
    auditor = member_of(roles.AUDITORS, "audrey")
    request = rf.get("/")
    request.user = auditor
    offered = {model.__name__: list(model_admin.get_actions(request))
               for model, model_admin in admin.site._registry.items()}
    assert not any(offered.values()), offered

    client.force_login(auditor)
    before = snapshot()
    tried = 0
    for model, model_admin in admin.site._registry.items():
        pks = list(model.objects.values_list("pk", flat=True)[:5])
        for _, name, _ in model_admin._get_base_actions():
            tried += 1
            url = reverse("admin:%s_%s_changelist" % (model._meta.app_label, model._meta.model_name))
            response = client.post(url, {"action": name, "_selected_action": pks}, follow=True)
            assert response.status_code in (200, 403), f"{model.__name__}.{name}: {response.status_code}"
    # Test connection (twice), retry provisioning, enable, disable, replay, delete selected, resubmit tasks.
    assert tried >= 8
    assert snapshot() == before


def test_an_auditor_is_refused_every_write_with_the_styled_page(history, client, world):
    client.force_login(member_of(roles.AUDITORS, "audrey"))
    event = InboundEvent.objects.filter(status=EventStatus.PROCESSED).first()
    posts = [
        reverse("admin:integrations_outgoingintegration_provision", args=[history.pk]),
        reverse("admin:integrations_outgoingintegration_enable", args=[history.pk]),
        reverse("admin:integrations_outgoingintegration_disable", args=[history.pk]),
        reverse("admin:integrations_outgoingintegration_zenduty_step_done", args=[history.pk]),
        reverse("admin:connections_xurrenttenant_webhooks_provision", args=[world.tenant.pk]),
        reverse("admin:syncengine_inboundevent_replay", args=[event.pk]),
        reverse("admin:syncengine_linkedpair_link"),
        reverse("admin:syncengine_linkedpair_unlink", args=[LinkedPair.objects.get().pk]),
        reverse("admin:connections_xurrenttenant_change", args=[world.tenant.pk]),
        reverse("admin:connections_zendutyaccount_change", args=[world.account.pk]),
        reverse("admin:integrations_outgoingintegration_change", args=[history.pk]),
    ]
    before = snapshot()
    for url in posts:
        response = client.post(url, {"name": "Renamed by an auditor", "enabled": ""})
        assert response.status_code == 403, f"POST {url} answered {response.status_code}"
        assert REFUSED in response.content.decode()
    for model in admin.site._registry:
        info = model._meta.app_label, model._meta.model_name
        pk = model.objects.values_list("pk", flat=True).first()
        urls = [reverse("admin:%s_%s_add" % info)]
        urls += [reverse("admin:%s_%s_delete" % info, args=[pk])] if pk is not None else []
        for url in urls:
            assert client.get(url).status_code == 403, url
            assert client.post(url, {"post": "yes"}).status_code == 403, url
    assert snapshot() == before


# -- integration admins -------------------------------------------------------------------------
def test_an_integration_admin_changes_connections_and_integrations_and_replays(history, client, world):
    client.force_login(member_of(roles.INTEGRATION_ADMINS, "ida"))

    response = client.post(reverse("admin:connections_zendutyaccount_change", args=[world.account.pk]),
                           {"name": "Zenduty (renamed)", "api_token": "", "base_url": world.account.base_url})
    assert response.status_code == 302, response.content.decode()[:2000]
    world.account.refresh_from_db()
    assert world.account.name == "Zenduty (renamed)"

    checked_at = world.tenant.last_checked_at
    client.post(reverse("admin:connections_xurrenttenant_changelist"),
                {"action": "test_connections", "_selected_action": [world.tenant.pk]})
    world.tenant.refresh_from_db()
    assert world.tenant.last_checked_at != checked_at

    assert client.post(reverse("admin:integrations_outgoingintegration_disable", args=[history.pk])).status_code == 302
    history.refresh_from_db()
    assert not history.enabled
    assert client.post(reverse("admin:integrations_outgoingintegration_provision",
                               args=[history.pk])).status_code == 302
    assert client.post(reverse("admin:connections_xurrenttenant_webhooks_provision",
                               args=[world.tenant.pk])).status_code == 302

    event = InboundEvent.objects.filter(status=EventStatus.PROCESSED, event_type="acknowledged").get()
    started = timezone.now()
    page = client.post(reverse("admin:syncengine_inboundevent_replay", args=[event.pk]), follow=True)
    assert "The event is queued again." in page.content.decode()
    event.refresh_from_db()
    assert "Replay requested by ida" in event.reason or event.processed_at >= started


def test_an_integration_admin_manages_no_users_and_edits_no_history(history, client):
    client.force_login(member_of(roles.INTEGRATION_ADMINS, "ida"))
    assert client.get(reverse("admin:auth_user_changelist")).status_code == 200
    assert client.get(reverse("admin:auth_user_add")).status_code == 403
    group = Group.objects.get(name=roles.AUDITORS)
    assert client.post(reverse("admin:auth_group_change", args=[group.pk]), {"name": "x"}).status_code == 403
    call = OutboundCall.objects.first()
    assert client.post(reverse("admin:syncengine_outboundcall_delete", args=[call.pk]),
                       {"post": "yes"}).status_code == 403
    assert OutboundCall.objects.filter(pk=call.pk).exists()
