"""Routes of the Zenduty simulator, mounted at /sandbox/zenduty/.

``api/…`` and ``integration/…`` mirror https://www.zenduty.com/api/… and
https://www.zenduty.com/integration/… (trailing slashes as Zenduty uses);
``ui/…`` is the by-hand page standing in for Zenduty's own screens.
"""
from django.urls import path, re_path
from django.views.generic import RedirectView

from sandbox.access import by_hand_page
from sandbox.zenduty import api, ui

TEAM = "api/account/teams/<str:team_id>/"
SERVICE = TEAM + "services/<str:service_id>/"

urlpatterns = [
    # Teams and what hangs off them (§5).
    path("api/account/teams/", api.TeamList.as_view()),
    path(TEAM, api.TeamDetail.as_view()),
    path(TEAM + "roles/", api.TeamRoles.as_view()),
    path(TEAM + "escalation_policies/", api.EscalationPolicyList.as_view()),
    path(TEAM + "sla/", api.SlaList.as_view()),
    path(TEAM + "priority/", api.PriorityList.as_view()),
    path(TEAM + "priority/<str:priority_id>/", api.PriorityDetail.as_view()),
    path(TEAM + "services/", api.ServiceList.as_view()),
    path(SERVICE, api.ServiceDetail.as_view()),
    path(SERVICE + "integrations/", api.IntegrationList.as_view()),
    path(SERVICE + "integrations/<str:integration_id>/", api.IntegrationDetail.as_view()),
    path("api/account/applications/", api.ApplicationList.as_view()),
    path("api/account/integration-metadata/<str:integration_key>/", api.IntegrationMetadata.as_view()),
    path("api/account/regenerate_integration_key/", api.RegenerateIntegrationKey.as_view()),
    # Incidents and notes (§3, §4).
    path("api/incidents/", api.IncidentCreate.as_view()),
    path("api/incidents/filter/", api.IncidentFilter.as_view()),
    path("api/incidents/<str:ref>/", api.IncidentDetail.as_view()),
    path("api/incidents/<str:ref>/note/", api.NoteList.as_view()),
    path("api/incidents/<str:ref>/note/<str:note_id>/", api.NoteDetail.as_view()),
    path("api/incidents/<str:ref>/alerts/", api.IncidentAlerts.as_view()),
    # Alert ingestion (§7).
    path("api/events/<str:integration_key>/", api.EventCreate.as_view()),
    path("integration/<str:account_id>/generic/<str:integration_key>/", api.GenericIntegrationCreate.as_view()),
    path("api/alert/status/<str:trace_id>/", api.AlertStatus.as_view()),
    re_path(r"^api/(?P<unmatched>.*/)$", api.not_found_view),
    # The by-hand UI.
    path("", RedirectView.as_view(pattern_name="zenduty-ui", permanent=False)),
    # For the portal's staff only (sandbox/urls.py says why).
    path("ui/", by_hand_page(ui.incident_list), name="zenduty-ui"),
    path("ui/incidents/<int:pk>/", by_hand_page(ui.incident_detail), name="zenduty-ui-incident"),
    # Zenduty's own incident page address, which the portal links to.
    path("dashboard/incidents/<int:number>", by_hand_page(ui.dashboard_incident),
         name="zenduty-ui-dashboard-incident"),
    path("ui/services/", by_hand_page(ui.service_list), name="zenduty-ui-services"),
    path("ui/services/<int:pk>/webhooks/", by_hand_page(ui.service_webhooks),
         name="zenduty-ui-service-webhooks"),
    path("ui/settings/", by_hand_page(ui.simulator_settings), name="zenduty-ui-settings"),
]
