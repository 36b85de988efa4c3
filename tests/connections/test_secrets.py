"""Secrets are encrypted at rest, rotated with the first key, and masked in logs."""
import logging

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from connections import secrets
from connections.models import XurrentTenant, ZendutyAccount

SECRET = "s3cr3t-client-secret-value"
TOKEN = "zenduty-api-token-value-123"


def raw_rows(table):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
        return cursor.fetchall()


@pytest.fixture
def tenant(db):
    return XurrentTenant.objects.create(name="WDC", account_id="wdc", client_id="cid", client_secret=SECRET)


@pytest.mark.django_db
def test_it_never_stores_a_secret_in_plain_text(tenant):
    ZendutyAccount.objects.create(name="ZD", api_token=TOKEN)
    tenant_rows = raw_rows(XurrentTenant._meta.db_table)
    zd_rows = raw_rows(ZendutyAccount._meta.db_table)
    assert SECRET not in repr(tenant_rows)
    assert TOKEN not in repr(zd_rows)
    assert any(str(v).startswith(secrets.PREFIX) for v in tenant_rows[0])
    # ... and reads give the plaintext back.
    assert XurrentTenant.objects.get().client_secret == SECRET
    assert ZendutyAccount.objects.get().api_token == TOKEN


@pytest.mark.django_db
def test_it_decrypts_with_any_configured_key(tenant, settings):
    first, second = settings.FIELD_ENCRYPTION_KEYS
    settings.FIELD_ENCRYPTION_KEYS = [second]
    XurrentTenant.objects.filter(pk=tenant.pk).update(client_secret="other-secret-value")
    settings.FIELD_ENCRYPTION_KEYS = [first, second]
    assert XurrentTenant.objects.get().client_secret == "other-secret-value"


@pytest.mark.django_db
def test_a_removed_key_gives_a_clear_error_without_the_secret(tenant, settings):
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(secrets.SecretDecryptionError) as excinfo:
        XurrentTenant.objects.get()
    assert "FIELD_ENCRYPTION_KEYS" in str(excinfo.value)
    assert SECRET not in str(excinfo.value)


@pytest.mark.django_db
def test_rotate_secrets_reencrypts_with_the_first_key(tenant, settings):
    ZendutyAccount.objects.create(name="ZD", api_token=TOKEN)
    new_key = Fernet.generate_key().decode()
    old_keys = list(settings.FIELD_ENCRYPTION_KEYS)
    settings.FIELD_ENCRYPTION_KEYS = [new_key, *old_keys]
    call_command("rotate_secrets")
    # Only the new key remains: the rotated values must still decrypt.
    settings.FIELD_ENCRYPTION_KEYS = [new_key]
    assert XurrentTenant.objects.get().client_secret == SECRET
    assert ZendutyAccount.objects.get().api_token == TOKEN


@pytest.mark.django_db
def test_rotate_secrets_stops_on_an_undecryptable_row(tenant, settings):
    from django.core.management.base import CommandError

    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(CommandError, match="XurrentTenant"):
        call_command("rotate_secrets")


def test_log_filter_masks_known_secrets(caplog):
    secrets.remember("super-secret-token-42")
    logger = logging.getLogger("tests.secrets")
    record = logger.makeRecord("tests.secrets", logging.INFO, __file__, 1, "token=%s", ("super-secret-token-42",),
                               None)
    secrets.RedactSecretsFilter().filter(record)
    assert record.getMessage() == f"token={secrets.MASK}"


def test_remembered_secrets_are_bounded_and_the_ones_in_use_stay_masked(monkeypatch):
    monkeypatch.setattr(secrets, "MAX_REMEMBERED_SECRETS", 50)
    monkeypatch.setattr(secrets, "_known_secrets", type(secrets._known_secrets)())
    secrets.remember("client-secret-in-use")
    for n in range(100):
        secrets.remember(f"expired-access-token-{n:03d}")
        secrets.remember("client-secret-in-use")  # decrypted again for every call
    assert len(secrets._known_secrets) == 50
    text = "client-secret-in-use expired-access-token-000 expired-access-token-099"
    assert secrets.redact(text) == f"{secrets.MASK} expired-access-token-000 {secrets.MASK}"


def test_a_secret_inside_a_longer_one_does_not_leave_the_rest_visible():
    secrets.remember("abcdef-123456")
    secrets.remember("abcdef-123456-and-more")
    assert secrets.redact("x abcdef-123456-and-more y") == f"x {secrets.MASK} y"


def test_serialisation_never_carries_the_secret():
    field = XurrentTenant._meta.get_field("client_secret")
    tenant = XurrentTenant(client_secret=SECRET)
    assert field.value_to_string(tenant) == secrets.MASK
    assert SECRET not in repr(tenant)
