"""Model field for secrets that are encrypted at rest."""
from __future__ import annotations

from django.db import models

from connections import secrets


class EncryptedTextField(models.TextField):
    """A text field stored as a Fernet ciphertext (``fernet:...``).

    The Python value is the plaintext; the database only ever holds ciphertext,
    so a raw SQL read shows no secret. Use it for every credential the portal
    stores (team convention: "secrets are declared once and masked everywhere").
    Admin forms must not render it back (see connections.forms.SecretField).
    """

    description = "Encrypted text"

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value in (None, ""):
            return value
        return secrets.encrypt(value)

    def from_db_value(self, value, expression, connection):
        if value in (None, ""):
            return value
        return secrets.decrypt(value)

    def value_to_string(self, obj):
        # Serialisation (dumpdata, fixtures) never carries the secret.
        return secrets.MASK
