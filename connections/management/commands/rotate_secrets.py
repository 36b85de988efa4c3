"""Re-encrypt every stored secret with the first key of FIELD_ENCRYPTION_KEYS.

Rotation: put the new key first, keep the old ones after it, run this command,
then remove the old keys.
"""
from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from connections import secrets
from connections.fields import EncryptedTextField


def encrypted_fields():
    """(model, column) for every EncryptedTextField in the project."""
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if isinstance(field, EncryptedTextField):
                yield model, field.column


class Command(BaseCommand):
    help = "Re-encrypt every stored secret with the first key of FIELD_ENCRYPTION_KEYS."

    def handle(self, *args, **options):
        total = 0
        quote = connection.ops.quote_name
        # Raw SQL on purpose: the ciphertext is rotated without ever turning
        # into a model attribute, and a row that no key decrypts stops the run
        # (inside one transaction, so nothing is half rotated).
        with transaction.atomic(), connection.cursor() as cursor:
            for model, column in encrypted_fields():
                table, pk = quote(model._meta.db_table), quote(model._meta.pk.column)
                cursor.execute(f"SELECT {pk}, {quote(column)} FROM {table}")
                for row_id, stored in cursor.fetchall():
                    if not stored:
                        continue
                    try:
                        rotated = secrets.rotate(stored)
                    except secrets.SecretDecryptionError as exc:
                        raise CommandError(f"{model._meta.label} #{row_id}.{column}: {exc}") from exc
                    cursor.execute(f"UPDATE {table} SET {quote(column)} = %s WHERE {pk} = %s", [rotated, row_id])
                    total += 1
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted {total} secret(s) with the current key."))
