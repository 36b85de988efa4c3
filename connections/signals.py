"""Signals of the connections app, for apps above it (``alerts``) that this app must not import."""
from django.dispatch import Signal

# Sent after a live check's outcome was recorded (``ConnectionStatusMixin.mark_checked``);
# ``connection`` is the XurrentTenant or ZendutyAccount, its ``status`` already updated.
connection_checked = Signal()
