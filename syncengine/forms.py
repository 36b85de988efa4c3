"""Forms of the sync engine's admin pages."""
from __future__ import annotations

from django import forms

from integrations.models import OutgoingIntegration


class LinkPairForm(forms.Form):
    """Link an existing Xurrent request and Zenduty incident by hand (``syncengine.by_hand.link``)."""

    integration = forms.ModelChoiceField(
        OutgoingIntegration.objects.filter(enabled=True).select_related("tenant").order_by("zenduty_service_name"),
        help_text="The request must be in its service instance, the incident on its service.")
    request_id = forms.CharField(label="Xurrent request ID", max_length=32,
                                 help_text="As Xurrent shows it, e.g. 70231.")
    incident_number = forms.CharField(label="Zenduty incident number", max_length=32,
                                      help_text="As Zenduty shows it, e.g. #1042.")
