"""Signals of the integrations app, for apps above it (``alerts``) that this app must not import."""
from django.dispatch import Signal

# Sent after an integration's ``sync_error`` was set or cleared; ``integration_id`` names it.
sync_error_changed = Signal()
