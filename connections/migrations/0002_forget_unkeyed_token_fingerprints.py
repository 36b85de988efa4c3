"""Forget cached access tokens stored under the old, unkeyed fingerprint.

Fingerprints used to be a plain SHA-256 of client ID, secret and token URL,
which lets anyone reading the table test guesses of the secret offline; they
are now an HMAC keyed from SECRET_KEY. Old rows would never match again, but a
tenant that is not used would keep its old fingerprint for good. Deleting the
rows costs each tenant one fresh token on its next call.
"""
from django.db import migrations


def forget_cached_tokens(apps, schema_editor):
    apps.get_model("connections", "XurrentAccessToken").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("connections", "0001_initial")]

    operations = [migrations.RunPython(forget_cached_tokens, migrations.RunPython.noop)]
