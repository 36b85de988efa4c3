"""No admin page ever shows a stored secret, to any user.

The walk covers every model registered with the admin (so a model added later
is covered without touching this test): its list, its change page and its
history page for every stored row, as a view-only staff user and as a
superuser. The secrets searched for are every value of every
``EncryptedTextField`` in the database, read back decrypted, plus the secrets
the test itself set, so a secret copied elsewhere (a message, a history row)
is found too.

The one deliberate exception: the portal's own Zenduty signing key, shown to
those who may change the integration while the manual Zenduty step is
pending (tests/integrations/test_admin.py covers that case).
"""
from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone

from connections.fields import EncryptedTextField
from connections.models import XurrentAccessToken
from integrations import provisioning
from sandbox import deliveries
from syncengine.models import InboundEvent, OutboundCall

pytestmark = pytest.mark.django_db(transaction=True)

ZENDUTY_KEY = "zenduty-displayed-signing-key-4f1c"


def stored_secrets() -> set[str]:
    """Every secret value stored in the portal's tables, decrypted."""
    found = set()
    for model in apps.get_models():
        names = [f.name for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
        for row in model.objects.values_list(*names) if names else ():
            found.update(value for value in row if value)
    return found


def view_only_user() -> User:
    user = User.objects.create_user("auditor", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    return user


def admin_pages():
    """(label, url) of every registered model's list, and change and history page of each row."""
    for model, model_admin in admin.site._registry.items():
        info = model._meta.app_label, model._meta.model_name
        yield f"{model.__name__} list", reverse("admin:%s_%s_changelist" % info)
        for pk in model.objects.values_list("pk", flat=True)[:20]:
            yield f"{model.__name__} {pk}", reverse("admin:%s_%s_change" % info, args=[pk])
            yield f"{model.__name__} {pk} history", reverse("admin:%s_%s_history" % info, args=[pk])


@pytest.fixture
def provisioned(world, client, admin_user):
    """A provisioned integration with its history, a cached OAuth token and a Zenduty-set signing key."""
    integration = world.integration(direction="bidirectional")
    provisioning.provision(integration.pk)
    deliveries.flush(service="xurrent")  # the webhook.verify events and their callbacks
    integration.refresh_from_db()
    integration.zenduty_signing_secret = ZENDUTY_KEY
    integration.zenduty_step_confirmed_at = timezone.now()
    integration.save()
    # The edits an admin makes leave history (LogEntry) rows behind too.
    client.force_login(admin_user)
    response = client.post(reverse("admin:connections_zendutyaccount_change", args=[world.account.pk]),
                           {"name": "Renamed Zenduty", "api_token": "", "base_url": world.account.base_url})
    assert response.status_code == 302, response.content.decode()[:2000]
    client.logout()
    return integration


def test_no_admin_page_shows_a_stored_secret(provisioned, client, admin_user):
    assert XurrentAccessToken.objects.exists() and InboundEvent.objects.exists() and OutboundCall.objects.exists()
    secrets = stored_secrets() | {"demo-client-secret", "demo-zenduty-token", ZENDUTY_KEY}
    assert {"demo-client-secret", "demo-zenduty-token", ZENDUTY_KEY} <= stored_secrets()

    for user in (view_only_user(), admin_user):
        client.force_login(user)
        pages = list(admin_pages())
        assert len(pages) > 10
        for label, url in pages:
            response = client.get(url)
            assert response.status_code == 200, f"{user}: {label} ({url}) answered {response.status_code}"
            html = response.content.decode()
            leaked = [s for s in secrets if s in html]
            assert not leaked, f"{user} reads a secret on {label} ({url})"
        client.logout()


def test_secrets_are_shown_as_set_or_not_set_to_view_only_users(provisioned, client, world):
    client.force_login(view_only_user())
    tenant_page = client.get(reverse("admin:connections_xurrenttenant_change", args=[world.tenant.pk]))
    account_page = client.get(reverse("admin:connections_zendutyaccount_change", args=[world.account.pk]))
    for page, label in ((tenant_page, "Client secret"), (account_page, "API token")):
        html = page.content.decode()
        assert label in html
        assert "Set (stored encrypted, never shown)" in html


def test_a_secret_in_a_list_column_a_read_only_field_or_a_fieldset_line_is_masked(rf, admin_user, tenant):
    from django.contrib.admin import AdminSite

    from connections.admin import SECRET_SET, MaskedSecretsMixin
    from connections.models import XurrentTenant

    class CarelessAdmin(MaskedSecretsMixin, admin.ModelAdmin):
        list_display = ("name", "client_secret")
        readonly_fields = ("client_secret",)
        fieldsets = ((None, {"fields": (("name", "client_secret"), "region")}),)

    model_admin = CarelessAdmin(XurrentTenant, AdminSite())
    request = rf.get("/")
    request.user = User.objects.create_user("viewer", is_staff=True)
    request.user.user_permissions.add(Permission.objects.get(codename="view_xurrenttenant"))
    request.user = User.objects.get(pk=request.user.pk)  # fresh permission cache

    assert model_admin.get_list_display(request) == ("name", "client_secret_state")
    assert model_admin.get_readonly_fields(request, tenant) == ("client_secret_state",)
    assert model_admin.get_fieldsets(request, tenant)[0][1]["fields"] == (("name", "client_secret_state"), "region")
    assert model_admin.client_secret_state(tenant) == SECRET_SET


def test_every_admin_action_declares_the_permissions_it_needs():
    """An action that calls out or writes must not be offered to (or run by) a view-only user."""
    for model, model_admin in admin.site._registry.items():
        for func, name, _ in model_admin._get_base_actions():
            assert getattr(func, "allowed_permissions", ()), f"{model.__name__}: action {name} declares no permission"
