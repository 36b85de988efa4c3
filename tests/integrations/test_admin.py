"""The outgoing-integration admin: the two-step add flow, validation, the change page, deleting."""
import re
from datetime import datetime, timezone as dt_timezone

import pytest
from django.urls import reverse

from connections.models import ConnectionStatus
from integrations.models import Direction, OutgoingIntegration, ProvisioningStatus
from tests.integrations.conftest import hooks_of

pytestmark = pytest.mark.django_db(transaction=True)

ADD = "/admin/integrations/outgoingintegration/add/"


def step2_data(world, service="Website", instance="Website (Production)", **overrides):
    team_id, service_id = world.service(service)
    data = {"zenduty_account": world.account.pk, "zenduty_team_id": team_id, "zenduty_service_id": service_id,
            "tenant": world.tenant.pk, "service_instance_id": world.instance(instance),
            "direction": Direction.BIDIRECTIONAL, "sync_notes": "on", "default_impact": "medium"}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def mapping_fields(world, team, impacts):
    return {f"priority_mapping__{pid}": impact for pid, impact in zip(world.priority_ids(team), impacts)}


def post_change(admin_client, url, data):
    """Post the change form as a browser would: with the read-only inlines' management forms."""
    page = admin_client.get(url).content.decode()
    management = dict(re.findall(r'name="([\w-]+-(?:TOTAL|INITIAL|MIN_NUM|MAX_NUM)_FORMS)"[^>]*value="(\d*)"', page))
    return admin_client.post(url, {**management, **data})


def errors_of(response):
    form = response.context["adminform"].form if "adminform" in response.context else response.context["form"]
    return form.errors


def test_step_one_lists_the_services_grouped_by_team(admin_client, world):
    response = admin_client.get(ADD)
    assert response.status_code == 200
    html = response.content.decode()
    assert '<optgroup label="Team: Operations">' in html
    assert '<optgroup label="Team: Platform">' in html
    assert ">Website<" in html
    assert "Step 1 of 2" in html


def test_step_one_leads_to_step_two_with_the_choice(admin_client, world):
    team_id, service_id = world.service("Website")
    response = admin_client.post(ADD, {"_choose_service": "1", "tenant": world.tenant.pk,
                                       "zenduty_service": f"{world.account.pk}:{team_id}:{service_id}"})
    assert response.status_code == 302
    step2 = admin_client.get(response["Location"])
    html = step2.content.decode()
    assert "Operations › Website" in html
    assert "Website (Production)" in html  # the tenant's service instances, listed live
    assert 'name="_addanother"' not in html and 'name="_save"' in html
    for name in world.priority_names("Operations"):  # the team's priorities, one impact select each
        assert f">{name}</label>" in html
    assert 'type="radio" name="direction"' in html


def test_it_adds_an_integration_and_provisions_it(admin_client, world):
    response = admin_client.post(ADD, step2_data(world))
    assert response.status_code == 302, errors_of(response)
    integration = OutgoingIntegration.objects.get()
    assert response["Location"] == reverse("admin:integrations_outgoingintegration_change", args=[integration.pk])
    assert integration.zenduty_team_name == "Operations" and integration.zenduty_service_name == "Website"
    assert integration.service_instance_name == "Website (Production)"
    assert integration.provisioning_status == ProvisioningStatus.ACTION_REQUIRED, integration.provisioning_error
    assert len(hooks_of(integration).xurrent_webhooks) == 4 and integration.zenduty_integration_id

    page = admin_client.get(response["Location"]).content.decode()
    assert "one step is left in Zenduty" in page  # the message after saving
    assert reverse("syncengine:zenduty-webhook", args=[integration.public_id]) in page
    assert 'data-copy="zenduty-webhook-url"' in page and 'data-copy="zenduty-signing-key"' in page
    assert "request.note-added" in page and "waiting for Xurrent" in page
    # The Xurrent webhooks are the tenant's: shown here, managed on the tenant's page.
    assert reverse("admin:connections_xurrenttenant_change", args=[integration.tenant_id]) in page


def test_it_stores_a_custom_mapping_for_a_team_with_five_priorities(admin_client, world):
    impacts = ["top", "high", "medium", "low", "low"]
    data = step2_data(world, use_custom_mapping="on", **mapping_fields(world, "Operations", impacts))
    response = admin_client.post(ADD, data)
    assert response.status_code == 302, errors_of(response)
    integration = OutgoingIntegration.objects.get()
    names = world.priority_names("Operations")
    assert integration.use_custom_mapping
    assert {v["name"]: v["impact"] for v in integration.priority_mapping.values()} == dict(zip(names, impacts))
    first = world.priority_ids("Operations")[0]
    assert integration.impact_for_priority(first) == "top"


def test_every_priority_needs_an_impact(admin_client, world):
    data = step2_data(world, use_custom_mapping="on",
                      **mapping_fields(world, "Operations", ["top", "high", "medium", "low"]))  # one missing
    response = admin_client.post(ADD, data)
    assert response.status_code == 200
    message = " ".join(errors_of(response)["priority_mapping"])
    assert "every priority of the Operations team" in message
    assert world.priority_names("Operations")[-1] in message
    assert not OutgoingIntegration.objects.exists()


def test_custom_mapping_is_refused_for_a_team_with_three_priorities(admin_client, world):
    team_id, _ = world.service(world.platform_service)
    step2 = admin_client.get(ADD, {"zenduty_account": world.account.pk, "zenduty_team_id": team_id,
                                   "zenduty_service_id": world.service(world.platform_service)[1],
                                   "tenant": world.tenant.pk})
    expected = ("Requires at least 4 priorities in Zenduty: the Platform team has 3 priorities — add priorities in "
                "Zenduty or use the Default Impact")
    assert expected in step2.content.decode()
    assert re.search(r'<input type="checkbox" name="use_custom_mapping"[^>]*disabled', step2.content.decode())

    # Not offered, so a crafted "on" is ignored: the default impact applies.
    data = step2_data(world, service=world.platform_service, instance=world.other_instance, use_custom_mapping="on",
                      default_impact="high")
    assert admin_client.post(ADD, data).status_code == 302
    integration = OutgoingIntegration.objects.get()
    assert (integration.use_custom_mapping, integration.priority_mapping, integration.default_impact) == \
        (False, {}, "high")


def test_a_mapping_ticked_before_the_team_lost_priorities_is_refused_until_unticked(admin_client, world):
    # Only reachable when Zenduty changed under a stored integration: the box stays usable.
    integration_data = step2_data(world, service=world.platform_service, instance=world.other_instance)
    assert admin_client.post(ADD, integration_data).status_code == 302
    integration = OutgoingIntegration.objects.get()
    OutgoingIntegration.objects.filter(pk=integration.pk).update(use_custom_mapping=True)
    change = reverse("admin:integrations_outgoingintegration_change", args=[integration.pk])

    response = post_change(admin_client, change, {**integration_data, "enabled": "on", "use_custom_mapping": "on"})
    assert response.status_code == 200
    assert "Requires at least 4 priorities in Zenduty: the Platform team has 3" in \
        " ".join(errors_of(response)["use_custom_mapping"])
    response = post_change(admin_client, change, {**integration_data, "enabled": "on"})
    assert response.status_code == 302, errors_of(response)
    integration.refresh_from_db()
    assert integration.use_custom_mapping is False


def test_a_second_integration_for_the_same_service_is_refused(admin_client, world):
    assert admin_client.post(ADD, step2_data(world)).status_code == 302
    team_id, service_id = world.service("Website")

    step1 = admin_client.post(ADD, {"_choose_service": "1", "tenant": world.tenant.pk,
                                    "zenduty_service": f"{world.account.pk}:{team_id}:{service_id}"})
    assert step1.status_code == 200
    assert "already has an outgoing integration" in " ".join(errors_of(step1)["zenduty_service"])

    step2 = admin_client.post(ADD, step2_data(world, instance=world.other_instance))
    assert step2.status_code == 200
    assert "already has an outgoing integration" in " ".join(errors_of(step2)["__all__"])
    assert "Constraint" not in step2.content.decode()  # the friendly message, not the database's
    assert OutgoingIntegration.objects.count() == 1


def test_a_service_instance_can_have_only_one_integration(admin_client, world):
    assert admin_client.post(ADD, step2_data(world)).status_code == 302
    response = admin_client.post(ADD, step2_data(world, service=world.second_service))
    assert response.status_code == 200
    assert "is already linked to the Zenduty service 'Website'" in " ".join(
        errors_of(response)["service_instance_id"])


def test_a_failed_connection_needs_a_confirmation(admin_client, world):
    world.tenant.mark_checked("Xurrent did not accept this client ID and secret.")
    team_id, service_id = world.service("Website")
    choice = {"_choose_service": "1", "tenant": world.tenant.pk,
              "zenduty_service": f"{world.account.pk}:{team_id}:{service_id}"}

    page = admin_client.get(ADD).content.decode()
    assert "failed" in page and "Choosing it needs the confirmation below" in page
    response = admin_client.post(ADD, choice)
    assert response.status_code == 200
    assert "did not accept this client ID" in " ".join(errors_of(response)["confirm_failed_connections"])

    response = admin_client.post(ADD, {**choice, "confirm_failed_connections": "on"})
    assert response.status_code == 302 and "confirm_failed_connections=1" in response["Location"]
    step2 = admin_client.get(response["Location"]).content.decode()
    assert "You confirmed that you want to use it anyway" in step2
    assert re.search(r'type="checkbox" name="confirm_failed_connections"[^>]*checked', step2)
    # Step 2 without the confirmation (the tenant failed after step 1, or a crafted post) asks
    # for it with a box the admin can tick, and does not claim it was given.
    response = admin_client.post(ADD, step2_data(world))
    assert response.status_code == 200 and "tick" in " ".join(errors_of(response)["confirm_failed_connections"])
    page = response.content.decode()
    assert 'type="checkbox" name="confirm_failed_connections"' in page
    assert "You confirmed" not in page
    response = admin_client.post(ADD, step2_data(world, confirm_failed_connections="on"))
    assert response.status_code == 302


def test_an_unknown_service_instance_is_refused_plainly(admin_client, world):
    response = admin_client.post(ADD, step2_data(world, service_instance_id="999999"))
    assert response.status_code == 200
    assert "has no service instance with ID 999999" in " ".join(errors_of(response)["service_instance_id"])


def test_the_search_endpoint_finds_instances_for_staff_only(admin_client, client, world):
    url = reverse("admin:integrations_outgoingintegration_service_instances")
    response = admin_client.get(url, {"tenant": world.tenant.pk, "q": "website (prod"})
    assert response.status_code == 200
    names = [r["name"] for r in response.json()["results"]]
    assert "Website (Production)" in names and all("website (prod" in n.casefold() for n in names)
    assert admin_client.get(url, {"tenant": "0"}).status_code == 404
    anonymous = client.get(url, {"tenant": world.tenant.pk, "q": "web"})
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]


def test_searching_as_a_person_types_reads_the_instances_once(admin_client, world, monkeypatch):
    from connections import http

    calls = []
    monkeypatch.setattr(http, "call_observers", [calls.append])
    url = reverse("admin:integrations_outgoingintegration_service_instances")
    for typed in ("w", "we", "web", "webs", "website (p", "EMAIL"):
        names = [r["name"] for r in admin_client.get(url, {"tenant": world.tenant.pk, "q": typed}).json()["results"]]
        assert names and all(typed.casefold() in n.casefold() for n in names), (typed, names)
    listing = [c for c in calls if c.url.endswith("/service_instances")]
    assert len(listing) == 1  # the demo account has one page of instances: read once, then filtered here


def test_an_account_too_large_to_keep_is_searched_page_by_page(admin_client, world, monkeypatch):
    from integrations import services

    monkeypatch.setattr(services, "CATALOGUE_LIMIT", 2)
    url = reverse("admin:integrations_outgoingintegration_service_instances")
    names = [r["name"] for r in admin_client.get(url, {"tenant": world.tenant.pk, "q": "website (prod"})
             .json()["results"]]
    assert names == ["Website (Production)"]


def test_form_errors_never_echo_secrets(admin_client, world):
    assert admin_client.post(ADD, step2_data(world)).status_code == 302
    integration = OutgoingIntegration.objects.get()
    change = reverse("admin:integrations_outgoingintegration_change", args=[integration.pk])
    data = step2_data(world, service_instance_id="", new_zenduty_signing_secret="pasted-zenduty-signing-key-123")
    response = post_change(admin_client, change, data)
    assert response.status_code == 200 and errors_of(response)["service_instance_id"]
    html = response.content.decode()
    assert "pasted-zenduty-signing-key-123" not in html
    for secret in ("demo-client-secret", "demo-zenduty-token"):
        assert secret not in html
    integration.refresh_from_db()
    assert integration.zenduty_signing_secret != "pasted-zenduty-signing-key-123"

    add_response = admin_client.post(ADD, step2_data(world, service=world.second_service, service_instance_id=""))
    assert not re.search(r"demo-(client-secret|zenduty-token)", add_response.content.decode())


def test_a_pasted_zenduty_signing_key_replaces_the_generated_one(admin_client, world):
    assert admin_client.post(ADD, step2_data(world)).status_code == 302
    integration = OutgoingIntegration.objects.get()
    change = reverse("admin:integrations_outgoingintegration_change", args=[integration.pk])
    response = post_change(admin_client, change, step2_data(world, new_zenduty_signing_secret="key-from-zenduty"))
    assert response.status_code == 302, errors_of(response)
    integration.refresh_from_db()
    assert integration.zenduty_signing_secret == "key-from-zenduty"


def test_a_pasted_zenduty_signing_key_is_never_shown_back(admin_client, world):
    """Only the portal's own key is offered (for Zenduty to use); a key pasted from Zenduty is not the
    portal's, and is never put back in a page, while the Zenduty step is pending or after."""
    assert admin_client.post(ADD, step2_data(world)).status_code == 302
    integration = OutgoingIntegration.objects.get()
    change = reverse("admin:integrations_outgoingintegration_change", args=[integration.pk])
    response = post_change(admin_client, change, step2_data(world, new_zenduty_signing_secret="key-from-zenduty"))
    assert response.status_code == 302, errors_of(response)

    page = admin_client.get(change).content.decode()
    assert "One step is left, in Zenduty" in page  # the step is still pending
    assert "key-from-zenduty" not in page and 'id="zenduty-signing-key"' not in page
    assert "The key Zenduty showed has been saved here" in page
    integration.refresh_from_db()
    assert integration.zenduty_signing_key_pasted is True


def test_the_portals_signing_key_is_shown_only_to_changers_and_only_while_the_step_is_pending(
        admin_client, client, world, django_user_model):
    from django.contrib.auth.models import Permission

    assert admin_client.post(ADD, step2_data(world)).status_code == 302
    integration = OutgoingIntegration.objects.get()
    change = reverse("admin:integrations_outgoingintegration_change", args=[integration.pk])
    secret = integration.zenduty_signing_secret

    page = admin_client.get(change).content.decode()
    assert secret in page and 'data-copy="zenduty-signing-key"' in page
    assert "Zenduty displays a signing key" in page and 'href="#id_new_zenduty_signing_secret"' in page

    viewer = django_user_model.objects.create_user("viewer", password="viewer-pass-123", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_outgoingintegration"))
    client.force_login(viewer)
    viewed = client.get(change)
    assert viewed.status_code == 200 and "Website (Production)" in viewed.content.decode()
    assert secret not in viewed.content.decode()

    admin_client.post(reverse("admin:integrations_outgoingintegration_zenduty_step_done", args=[integration.pk]))
    assert secret not in admin_client.get(change).content.decode()


def test_a_view_only_user_sees_no_button_that_calls_out_or_writes(admin_client, client, world, django_user_model,
                                                                   caplog):
    from django.contrib.auth.models import Permission

    assert admin_client.post(ADD, step2_data(world)).status_code == 302
    integration = OutgoingIntegration.objects.get()
    change = reverse("admin:integrations_outgoingintegration_change", args=[integration.pk])
    buttons = (">Retry provisioning</button>", ">Disable</button>", ">I have done this in Zenduty</button>")
    page = admin_client.get(change).content.decode()
    assert all(label in page for label in buttons)

    viewer = django_user_model.objects.create_user("viewer", password="viewer-pass-123", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_outgoingintegration"))
    client.force_login(viewer)
    viewed = client.get(change).content.decode()
    assert not [label for label in buttons if label in viewed]
    assert "an integration admin then confirms it here" in viewed
    listing = client.get(reverse("admin:integrations_outgoingintegration_changelist")).content.decode()
    assert "retry_provisioning" not in listing and "disable_integrations" not in listing

    status = integration.provisioning_status
    refused = client.post(reverse("admin:integrations_outgoingintegration_disable", args=[integration.pk]))
    assert refused.status_code == 403
    # A page in the admin's look that says what happened, and one log line without a traceback.
    assert "You may look, but not do this" in refused.content.decode() and "changed nothing" in refused.content.decode()
    assert "Zenduty ⇄ Xurrent integration portal" in refused.content.decode()  # the admin's header, not Django's
    assert "Log out" in refused.content.decode()
    (logged,) = [r for r in caplog.records if r.name == "django.request" and getattr(r, "status_code", 0) == 403]
    assert logged.exc_info is None and "Forbidden" in logged.getMessage()
    integration.refresh_from_db()
    assert integration.enabled and integration.provisioning_status == status


def test_the_panel_alone_refreshes_and_links_to_the_history(admin_client, client, world):
    assert admin_client.post(ADD, step2_data(world)).status_code == 302
    integration = OutgoingIntegration.objects.get()
    admin_client.post(reverse("admin:integrations_outgoingintegration_zenduty_step_done", args=[integration.pk]))
    panel_url = reverse("admin:integrations_outgoingintegration_panel", args=[integration.pk])

    panel = admin_client.get(panel_url).content.decode()
    assert 'id="provisioning"' in panel
    assert 'data-status="verifying"' in panel and "updates by itself" in panel
    assert f"outboundcall/?integration__id__exact={integration.pk}" in panel
    assert f"inboundevent/?integration__id__exact={integration.pk}" in panel
    assert "<form" not in panel.split('id="provisioning"')[0]  # the fragment, not a whole page
    assert client.get(panel_url).status_code == 302  # not for the anonymous: to the login page

    from sandbox import deliveries

    deliveries.flush(service="xurrent")
    panel = admin_client.get(panel_url).content.decode()
    assert 'data-status="provisioned"' in panel and "updates by itself" not in panel


def test_retry_is_offered_only_while_enabled_and_errors_come_before_the_panel(admin_client, world):
    assert admin_client.post(ADD, step2_data(world)).status_code == 302
    integration = OutgoingIntegration.objects.get()
    change = reverse("admin:integrations_outgoingintegration_change", args=[integration.pk])
    assert "Retry provisioning</button>" in admin_client.get(change).content.decode()
    admin_client.post(reverse("admin:integrations_outgoingintegration_disable", args=[integration.pk]))
    assert "Retry provisioning</button>" not in admin_client.get(change).content.decode()

    page = post_change(admin_client, change, step2_data(world, service_instance_id="")).content.decode()
    assert page.index("errornote") < page.index('id="provisioning"')


def test_the_change_page_buttons(admin_client, world):
    assert admin_client.post(ADD, step2_data(world)).status_code == 302
    integration = OutgoingIntegration.objects.get()

    def post(name):
        url = reverse(f"admin:integrations_outgoingintegration_{name}", args=[integration.pk])
        response = admin_client.post(url)
        assert response.status_code == 302
        integration.refresh_from_db()

    post("disable")
    assert not integration.enabled and integration.provisioning_status == ProvisioningStatus.DISABLED
    assert world.remote_state()["webhooks"] == 0  # the tenant's last enabled integration: its webhooks go
    post("enable")
    assert integration.enabled and world.remote_webhooks_disabled(integration) == [False] * 4
    post("zenduty_step_done")
    assert integration.zenduty_step_confirmed_at is not None
    # A morning time ends with "a.m.": the sentence adds no second period after it.
    OutgoingIntegration.objects.filter(pk=integration.pk).update(
        zenduty_step_confirmed_at=datetime(2026, 12, 1, 6, 34, tzinfo=dt_timezone.utc))
    page = admin_client.get(reverse("admin:integrations_outgoingintegration_change", args=[integration.pk]))
    confirmed = re.search(r"✔ Confirmed ([^<]*)<", page.content.decode()).group(1)
    assert "6:34 a.m." in confirmed and ".." not in confirmed
    assert integration.provisioning_status == ProvisioningStatus.VERIFYING
    post("provision")
    assert integration.provisioning_status == ProvisioningStatus.VERIFYING
    assert admin_client.get(reverse("admin:integrations_outgoingintegration_provision",
                                    args=[integration.pk])).status_code == 405


def test_disabling_says_what_happened_to_the_zenduty_and_the_tenants_xurrent_webhooks(admin_client, world):
    from integrations import provisioning

    first = world.integration(direction=Direction.BIDIRECTIONAL)
    second = world.integration(service=world.second_service, instance=world.other_instance)
    for integration in (first, second):
        provisioning.provision(integration.pk)
    assert world.remote_state() == {"webhooks": 4, "policies": 1, "zenduty_integrations": 2}

    # Another integration of the tenant is enabled: its Xurrent webhooks stay; Zenduty's is switched off.
    response = admin_client.post(reverse("admin:integrations_outgoingintegration_disable", args=[first.pk]),
                                 follow=True)
    page = response.content.decode()
    assert ("Website ⇄ Website (Production): disabled; its Zenduty outgoing webhook is switched off and the "
            f"Xurrent webhooks of {world.tenant} stay, for its other enabled integrations.") in page
    assert "its Xurrent webhooks are switched off" not in page
    assert world.remote_state()["webhooks"] == 4
    assert [i["is_enabled"] for i in world.remote_zenduty_integrations(first)] == [False]

    # The tenant's last enabled integration (here with the list's action): they are removed.
    changelist = reverse("admin:integrations_outgoingintegration_changelist")
    response = admin_client.post(changelist, {"action": "disable_integrations", "_selected_action": [second.pk]},
                                 follow=True)
    assert ("Payments API ⇄ Email (Production): disabled; its Zenduty outgoing webhook is switched off and the "
            f"Xurrent webhooks of {world.tenant} are removed, as no enabled integration of the tenant needs "
            "them.") in response.content.decode()
    assert world.remote_state() == {"webhooks": 0, "policies": 0, "zenduty_integrations": 2}
    assert [i["is_enabled"] for i in world.remote_zenduty_integrations(second)] == [False]


def test_the_changelist_shows_badges_and_the_actions_work(admin_client, world):
    assert admin_client.post(ADD, step2_data(world)).status_code == 302
    integration = OutgoingIntegration.objects.get()
    changelist = reverse("admin:integrations_outgoingintegration_changelist")
    page = admin_client.get(changelist).content.decode()
    assert "Website ⇄ Website (Production)" in page and "provisioning-badge" in page
    assert admin_client.get(changelist, {"provisioning_status__exact": "failed"}).status_code == 200

    response = admin_client.post(changelist, {"action": "disable_integrations", "_selected_action": [integration.pk]})
    assert response.status_code == 302
    integration.refresh_from_db()
    assert integration.provisioning_status == ProvisioningStatus.DISABLED
    admin_client.post(changelist, {"action": "enable_integrations", "_selected_action": [integration.pk]})
    admin_client.post(changelist, {"action": "retry_provisioning", "_selected_action": [integration.pk]})
    integration.refresh_from_db()
    assert integration.enabled and integration.provisioning_status == ProvisioningStatus.ACTION_REQUIRED


def test_deleting_removes_what_was_provisioned(admin_client, world):
    assert admin_client.post(ADD, step2_data(world)).status_code == 302
    integration = OutgoingIntegration.objects.get()
    delete = reverse("admin:integrations_outgoingintegration_delete", args=[integration.pk])
    page = admin_client.get(delete).content.decode()
    assert "the tenant's Xurrent webhooks and policy" in page and "Outgoing Webhooks" in page

    response = admin_client.post(delete, {"post": "yes"})
    assert response.status_code == 302
    assert not OutgoingIntegration.objects.exists()
    assert world.remote_state() == {"webhooks": 0, "policies": 0, "zenduty_integrations": 0}


def test_a_failed_removal_keeps_the_integration_unless_deleting_anyway(admin_client, world):
    assert admin_client.post(ADD, step2_data(world)).status_code == 302
    integration = OutgoingIntegration.objects.get()
    delete = reverse("admin:integrations_outgoingintegration_delete", args=[integration.pk])
    world.break_xurrent()

    response = admin_client.post(delete, {"post": "yes"}, follow=True)
    assert OutgoingIntegration.objects.exists()
    page = response.content.decode()
    assert "The integration was kept. Could not delete the Xurrent webhook" in page
    assert "Still there: the tenant&#x27;s Xurrent webhooks in Xurrent" in page and "webhook policy" in page
    assert 'name="delete_anyway"' in page
    # Zenduty was reachable, so its part is gone already; the page does not claim otherwise.
    assert world.remote_state()["zenduty_integrations"] == 0 and "in Zenduty the outgoing" not in page

    response = admin_client.post(delete, {"post": "yes", "delete_anyway": "1"}, follow=True)
    assert not OutgoingIntegration.objects.exists()
    assert "Deleted from the portal only." in response.content.decode()
    assert world.remote_state()["webhooks"] == 4  # left in Xurrent, and named on the page


def test_admin_pages_render(admin_client, world):
    assert admin_client.post(ADD, step2_data(world)).status_code == 302
    integration = OutgoingIntegration.objects.get()
    for url in (reverse("admin:integrations_outgoingintegration_changelist"), ADD,
                reverse("admin:integrations_outgoingintegration_change", args=[integration.pk]),
                reverse("admin:integrations_outgoingintegration_history", args=[integration.pk])):
        assert admin_client.get(url).status_code == 200, url


def test_a_failed_listing_is_shown_as_a_message(admin_client, world):
    world.account.mark_checked("Zenduty did not accept this API token.")
    world.break_zenduty()
    page = admin_client.get(ADD).content.decode()
    assert "Could not list the teams and services of Zenduty account" in page
    assert ConnectionStatus.FAILED in page or "failed" in page


def test_editing_the_direction_keeps_both_sides_webhooks(admin_client, world):
    # Once a pair exists its status syncs both ways, whichever side created it.
    assert admin_client.post(ADD, step2_data(world, direction=Direction.XURRENT_TO_ZENDUTY)).status_code == 302
    integration = OutgoingIntegration.objects.get()
    assert world.remote_state() == {"webhooks": 4, "policies": 1, "zenduty_integrations": 1}
    change = reverse("admin:integrations_outgoingintegration_change", args=[integration.pk])

    response = post_change(admin_client, change, step2_data(world, direction=Direction.ZENDUTY_TO_XURRENT,
                                                            sync_notes=None, enabled="on"))

    assert response.status_code == 302, errors_of(response)
    assert world.remote_state() == {"webhooks": 4, "policies": 1, "zenduty_integrations": 1}
    integration.refresh_from_db()
    assert integration.provisioning_status == ProvisioningStatus.ACTION_REQUIRED
    page = admin_client.get(change).content.decode()
    assert "Latest outbound calls" in page and "webhook_policies" in page  # the sync engine's history inline
    assert "Xurrent webhooks of the tenant" in page


def test_saving_without_relevant_changes_calls_no_api(admin_client, world, monkeypatch):
    assert admin_client.post(ADD, step2_data(world)).status_code == 302
    integration = OutgoingIntegration.objects.get()
    change = reverse("admin:integrations_outgoingintegration_change", args=[integration.pk])
    calls = []
    monkeypatch.setattr("integrations.provisioning.provision", lambda *a, **k: calls.append(a))

    response = post_change(admin_client, change, step2_data(world, default_impact="high", enabled="on"))

    assert response.status_code == 302, errors_of(response)
    integration.refresh_from_db()
    assert integration.default_impact == "high" and calls == []


def test_the_tenant_page_shows_its_webhooks_and_offers_retry_to_changers_only(admin_client, client, world,
                                                                              django_user_model):
    from django.contrib.auth.models import Permission

    assert admin_client.post(ADD, step2_data(world)).status_code == 302
    hooks = hooks_of(OutgoingIntegration.objects.get())
    tenant_page = reverse("admin:connections_xurrenttenant_change", args=[world.tenant.pk])
    retry = reverse("admin:connections_xurrenttenant_webhooks_provision", args=[world.tenant.pk])

    page = admin_client.get(tenant_page).content.decode()
    assert f"/webhooks/xurrent/tenant/{hooks.public_id}/" in page and hooks.xurrent_policy_audience in page
    assert all(f"#{h['id']}" in page for h in hooks.xurrent_webhooks.values())
    assert "waiting for Xurrent" in page and retry in page
    from sandbox import deliveries
    deliveries.flush(service="xurrent")
    response = admin_client.post(retry, follow=True)
    assert "The tenant&#x27;s Xurrent webhooks: Provisioned." in response.content.decode()
    assert response.content.decode().count("✔ verified") == 4

    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_xurrenttenant"))
    client.force_login(viewer)
    page = client.get(tenant_page).content.decode()
    assert f"/webhooks/xurrent/tenant/{hooks.public_id}/" in page and retry not in page
    assert client.post(retry).status_code == 403
    bad = reverse("admin:connections_xurrenttenant_webhooks_provision", args=["abc"])
    assert admin_client.post(bad).status_code == 404


def test_a_malformed_integration_id_in_a_button_address_is_a_404_not_a_500(admin_client):
    for name in ("panel", "provision", "disable"):
        url = reverse(f"admin:integrations_outgoingintegration_{name}", args=["abc"])
        response = admin_client.get(url) if name == "panel" else admin_client.post(url)
        assert response.status_code == 404, name


def test_the_note_settings_are_off_by_default_say_what_public_means_and_are_saved(admin_client, world):
    assert admin_client.post(ADD, step2_data(world)).status_code == 302
    integration = OutgoingIntegration.objects.get()
    assert (integration.sync_internal_xurrent_notes, integration.public_zenduty_notes) == (False, False)
    change = reverse("admin:integrations_outgoingintegration_change", args=[integration.pk])
    page = admin_client.get(change).content.decode()
    assert "the requester (and everyone who can see the request) reads them" in page
    assert "internal ones may hold what the on-call audience should not see" in page

    response = post_change(admin_client, change, step2_data(world, enabled="on", public_zenduty_notes="on",
                                                            sync_internal_xurrent_notes="on"))

    assert response.status_code == 302, errors_of(response)
    integration.refresh_from_db()
    assert (integration.sync_internal_xurrent_notes, integration.public_zenduty_notes) == (True, True)


def test_the_migration_marks_keys_pasted_before_it_from_the_admins_log(admin_client, world):
    """Integrations whose key an admin replaced before the flag existed are found in the log the admin
    wrote (as connections.changes records it), so their key is not shown back as the portal's either."""
    import importlib

    from django.apps import apps

    migration = importlib.import_module("integrations.migrations.0007_zenduty_signing_key_pasted")
    assert admin_client.post(ADD, step2_data(world)).status_code == 302
    other = {"service": world.second_service, "instance": world.other_instance}
    assert admin_client.post(ADD, step2_data(world, **other)).status_code == 302
    pasted, untouched = OutgoingIntegration.objects.order_by("pk")
    for integration, fields in ((pasted, {"new_zenduty_signing_secret": "key-from-zenduty"}),
                                (untouched, {**other, "sync_notes": None})):
        change = reverse("admin:integrations_outgoingintegration_change", args=[integration.pk])
        response = post_change(admin_client, change, step2_data(world, **fields))
        assert response.status_code == 302, errors_of(response)
    OutgoingIntegration.objects.update(zenduty_signing_key_pasted=False)  # as before the migration

    migration.mark_pasted_keys(apps, None)

    assert dict(OutgoingIntegration.objects.values_list("pk", "zenduty_signing_key_pasted")) == \
        {pasted.pk: True, untouched.pk: False}


def test_the_zenduty_step_names_the_zenduty_integration_as_zenduty_calls_it(admin_client, world):
    """The portal names the Zenduty integration after the service instance when it creates it, and
    does not rename it when the instance changes: the steps name it as Zenduty lists it."""
    assert admin_client.post(ADD, step2_data(world)).status_code == 302
    integration = OutgoingIntegration.objects.get()
    change = reverse("admin:integrations_outgoingintegration_change", args=[integration.pk])
    assert "“Xurrent: Website (Production)” that the portal created" in admin_client.get(change).content.decode()

    response = post_change(admin_client, change, step2_data(world, instance=world.other_instance))
    assert response.status_code == 302, errors_of(response)

    integration.refresh_from_db()
    assert integration.service_instance_name == world.other_instance
    team_id, service_id = world.service("Website")
    [in_zenduty] = [i for i in world.zenduty.list_integrations(team_id, service_id)
                    if str(i["unique_id"]) == integration.zenduty_integration_id]
    assert in_zenduty["name"] == "Xurrent: Website (Production)"
    page = admin_client.get(change).content.decode()
    assert "“Xurrent: Website (Production)” that the portal created" in page
