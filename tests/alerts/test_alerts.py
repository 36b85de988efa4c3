"""Alerts by email: raised once, not again while the condition holds, one mail when it clears.

Mail goes to Django's locmem outbox (pytest-django sets it for every test), once the transaction
that raised or cleared the alert commits: the tests run in real transactions.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.core import mail
from django.utils import timezone

from alerts import services
from alerts.models import Alert
from connections import errors
from syncengine.flows.common import flagged_on_permanent_error
from syncengine.models import InboundEvent

# Mails are sent once the transaction that raised or cleared the alert commits.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admins(db):
    """One integration admin with an address, one without, and a superuser who is not in the group."""
    group = Group.objects.get_or_create(name=services.ADMIN_GROUP)[0]
    ops = User.objects.create_user("ops", "ops@example.com", "pw", is_staff=True)
    ops.groups.add(group)
    User.objects.create_user("quiet", "", "pw", is_staff=True).groups.add(group)
    User.objects.create_superuser("root", "root@example.com", "pw")
    return ops


def subjects():
    return [m.subject for m in mail.outbox]


def fail_a_call(integration):
    with pytest.raises(errors.PermanentError):
        with flagged_on_permanent_error(integration, "create the request"):
            raise errors.PermissionDeniedError("Xurrent answered 403 Forbidden", status=403)


class TestRecipients:
    def test_integration_admins_with_an_address(self, admins):
        assert services.recipients() == ["ops@example.com"]

    def test_superusers_until_the_group_exists(self, db):
        User.objects.create_superuser("root", "root@example.com", "pw")
        User.objects.create_superuser("nomail", "", "pw")
        User.objects.create_user("staff", "staff@example.com", "pw", is_staff=True)
        assert services.recipients() == ["root@example.com"]


class TestIntegrationFailing:
    def test_a_sync_error_mails_once_and_once_more_when_it_clears(self, admins, integration):
        fail_a_call(integration)

        assert subjects() == [f"[Integration portal] {integration}: the sync is failing"]
        assert mail.outbox[0].to == ["ops@example.com"]
        assert "Could not create the request. The API refused" in mail.outbox[0].body
        assert f"/admin/integrations/outgoingintegration/{integration.pk}/change/" in mail.outbox[0].body

        fail_a_call(integration)  # the next event fails the same way
        services.evaluate_all(check_connections=False)  # and the scheduled check runs
        assert len(mail.outbox) == 1

        integration.refresh_from_db()
        with flagged_on_permanent_error(integration, "create the request"):
            pass  # a success clears the sync error
        assert subjects()[1:] == [f"[Integration portal] Cleared: {integration}: the sync is failing"]
        services.evaluate_all(check_connections=False)
        assert len(mail.outbox) == 2
        alert = Alert.objects.get()
        assert alert.key == f"integration:{integration.pk}:failing" and alert.cleared_at is not None

    def test_failing_events_raise_it_and_a_later_success_clears_it(self, admins, integration):
        now = timezone.now()
        InboundEvent.objects.create(source="zenduty", integration=integration, status="processed",
                                    received_at=now - timedelta(minutes=9))
        failed = InboundEvent.objects.create(source="zenduty", integration=integration, status="failed",
                                             reason="Gave up after 5 attempts: Xurrent answered 503",
                                             received_at=now - timedelta(minutes=5))
        services.evaluate_all(check_connections=False)
        services.evaluate_all(check_connections=False)
        assert len(mail.outbox) == 1 and "Gave up after 5 attempts" in mail.outbox[0].body

        InboundEvent.objects.create(source="zenduty", integration=integration, status="ignored",
                                    received_at=now - timedelta(minutes=2))  # ignored: no verdict
        services.evaluate_all(check_connections=False)
        assert len(mail.outbox) == 1
        failed.status = "processed"  # replayed, and it went through
        failed.save()
        services.evaluate_all(check_connections=False)
        assert subjects()[1].startswith("[Integration portal] Cleared: ")

        # It can start again: the same alert raised anew, mailed again.
        InboundEvent.objects.create(source="zenduty", integration=integration, status="failed", received_at=now)
        services.evaluate_all(check_connections=False)
        assert len(mail.outbox) == 3 and Alert.objects.get().cleared_at is None

    def test_a_mail_server_down_does_not_break_the_sync(self, admins, integration, settings):
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 1
        fail_a_call(integration)  # raises the API error only, not the mail's
        assert Alert.objects.get().cleared_at is None


class TestConnections:
    def test_a_failed_check_mails_once_and_a_good_one_clears_it(self, admins, tenant):
        tenant.mark_checked("Xurrent refused the client ID and secret (401).")
        tenant.mark_checked("Xurrent refused the client ID and secret (401).")
        assert subjects() == ["[Integration portal] Xurrent tenant Widget Data Center: the connection stopped working"]
        assert "refused the client ID and secret" in mail.outbox[0].body
        assert tenant.client_secret not in mail.outbox[0].body

        tenant.mark_checked("")
        tenant.mark_checked("")
        assert subjects()[1:] == ["[Integration portal] Cleared: Xurrent tenant Widget Data Center: the connection "
                                  "stopped working"]


# -- end to end, through the simulators ------------------------------------------------------------
def test_xurrent_disabling_a_webhook_mails_once_and_retry_provisioning_clears_it(sandbox, settings, admins):
    """Xurrent disables the portal's request.create webhook after failed deliveries; the scheduled check
    notices (one list of the account's webhooks), mails once; Retry provisioning enables it again."""
    import socket

    from integrations import provisioning
    from integrations.models import TenantWebhooks
    from sandbox import deliveries
    from sandbox.xurrent.models import Webhook
    from tests.syncengine.test_sync import Demo

    demo = Demo(sandbox)
    hooks = TenantWebhooks.objects.get()
    settings.SANDBOX_XURRENT_WEBHOOK_DISABLE_AFTER_FAILURES = 2
    settings.SANDBOX_XURRENT_WEBHOOK_DISABLE_AFTER_SECONDS = 0
    services.evaluate_all()
    assert mail.outbox == []  # all well

    # The portal becomes unreachable at the address request.create delivers to.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    Webhook.objects.filter(pk=hooks.xurrent_webhooks["request.create"]["id"]).update(
        uri=f"http://127.0.0.1:{port}/webhooks/gone/")
    demo.raise_request()
    deliveries.flush(rounds=3, service="xurrent")
    assert Webhook.objects.get(pk=hooks.xurrent_webhooks["request.create"]["id"]).disabled

    services.evaluate_all()
    services.evaluate_all()

    name = hooks.tenant.name
    assert subjects() == [f"[Integration portal] {name}: Xurrent disabled the webhook for request.create"]
    assert "Retry provisioning" in mail.outbox[0].body and "ConnectionError" in mail.outbox[0].body

    provisioning.retry_tenant_webhooks(hooks.tenant_id)
    assert not Webhook.objects.get(pk=hooks.xurrent_webhooks["request.create"]["id"]).disabled
    services.evaluate_all()
    assert subjects()[1:] == [f"[Integration portal] Cleared: {name}: Xurrent disabled the webhook for request.create"]


def test_credentials_revoked_in_xurrent_are_noticed_by_the_scheduled_check(sandbox, admins):
    from connections.models import XurrentTenant
    from sandbox.xurrent.models import OAuthApplication
    from tests.syncengine.test_sync import Demo

    Demo(sandbox)
    OAuthApplication.objects.update(disabled=True)  # someone disabled the portal's OAuth application

    services.evaluate_all()
    services.evaluate_all()

    tenant = XurrentTenant.objects.get()
    assert tenant.status == "failed"
    assert subjects() == [f"[Integration portal] Xurrent tenant {tenant.name}: the connection stopped working"]

    OAuthApplication.objects.update(disabled=False)
    services.evaluate_all()
    assert subjects()[1].startswith("[Integration portal] Cleared: Xurrent tenant")


@pytest.mark.django_db(transaction=False)  # a flushed database has lost the migration's schedule
def test_one_schedule_evaluates_every_alerts_check_minutes(settings):
    from django_q.models import Schedule

    from alerts.schedule import align_schedule

    schedule = Schedule.objects.get(func="alerts.tasks.evaluate")
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == (Schedule.MINUTES, 5, -1)
    settings.ALERTS_CHECK_MINUTES = 15
    align_schedule()
    assert Schedule.objects.get(pk=schedule.pk).minutes == 15
