"""The by-hand UI of the simulated Zenduty (``/sandbox/zenduty/ui/``).

A person plays the on-call side here: trigger, acknowledge and resolve
incidents, add notes, change priorities, and do the one step real Zenduty
only offers in its screens, configuring a service's Outgoing Webhooks
integration (URL, signing key, authentication;
https://www.zenduty.com/docs/outgoingwebhooks-integration/).
Actions are made as the account's UI user (e.g. "Dwight Schrute"), not as
the API token's user, so the portal can tell people's changes from its own.
"""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from sandbox.zenduty import demo, ids, operations
from sandbox.zenduty.models import (OUTGOING_WEBHOOKS_EXTENSION, Account, Incident, Integration, Priority, Service,
                                    SimulatorSettings, User, WebhookAuth)

SESSION_KEY = "sandbox_zenduty_account"


def _account(request) -> Account | None:
    """The account the UI shows: chosen with ``?account=``, remembered in the session, else the first."""
    chosen = request.GET.get("account")
    if chosen and chosen.isdigit() and Account.objects.filter(pk=int(chosen)).exists():
        request.session[SESSION_KEY] = int(chosen)
    pk = request.session.get(SESSION_KEY)
    account = Account.objects.filter(pk=pk).first() if pk else None
    return account or Account.objects.order_by("id").first()


def _ui_user(account: Account) -> User:
    """The person clicking (never the API token's user)."""
    if account.ui_user_id:
        return account.ui_user
    user = User.objects.create(account=account, first_name="Dwight", last_name="Schrute",
                               email=f"dwight.schrute+{account.pk}@example.com", role=User.ROLE_ADMIN)
    account.ui_user = user
    account.save(update_fields=["ui_user"])
    return user


def _base_context(account: Account | None) -> dict:
    return {"account": account, "accounts": Account.objects.order_by("id"),
            "ui_user": _ui_user(account) if account else None}


class TriggerForm(forms.Form):
    service = forms.ModelChoiceField(queryset=Service.objects.none())
    title = forms.CharField(max_length=500)
    summary = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    priority = forms.ModelChoiceField(queryset=Priority.objects.none(), required=False,
                                      empty_label="Service default")

    def __init__(self, *args, account: Account, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["service"].queryset = Service.objects.filter(team__account=account).select_related("team")
        self.fields["service"].label_from_instance = lambda s: f"{s.name} ({s.team.name})"
        self.fields["priority"].queryset = Priority.objects.filter(team__account=account).select_related("team")
        self.fields["priority"].label_from_instance = lambda p: f"{p.name} – {p.description} ({p.team.name})"

    def clean(self):
        data = super().clean()
        if data.get("priority") and data.get("service") and data["priority"].team_id != data["service"].team_id:
            self.add_error("priority", "Choose a priority of the service's team.")
        return data


@require_http_methods(["GET", "POST"])
def incident_list(request):
    """Incidents of the account (newest first) and a form to trigger one."""
    account = _account(request)
    if account is None:
        if request.method == "POST" and "seed" in request.POST:
            demo.seed()
            messages.success(request, "Created the demo account.")
            return redirect("zenduty-ui")
        return render(request, "sandbox_zenduty/empty.html", _base_context(None))
    form = TriggerForm(request.POST or None, account=account)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        extra = {"team_priority": data["priority"]} if data["priority"] else {}
        incident = operations.create_incident(service=data["service"], title=data["title"], summary=data["summary"],
                                          created_by=_ui_user(account), **extra)
        messages.success(request, f"Triggered incident #{incident.incident_number}.")
        return redirect("zenduty-ui-incident", pk=incident.pk)
    status = request.GET.get("status", "")
    incidents = Incident.objects.filter(account=account).select_related("service__team", "team_priority",
                                                                         "assigned_to")
    if status in ("1", "2", "3"):
        incidents = incidents.filter(status=int(status))
    return render(request, "sandbox_zenduty/incidents.html", {
        **_base_context(account), "form": form, "incidents": incidents[:200], "status": status})


class NoteForm(forms.Form):
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))


@require_http_methods(["GET", "POST"])
def dashboard_incident(request, number: int):
    """Zenduty's incident page address (``/dashboard/incidents/<number>``), which the portal links to:
    the simulator's page of that incident (numbers are per account; the newest account's wins)."""
    incident = Incident.objects.filter(incident_number=number).order_by("-account_id").first()
    if incident is None:
        raise Http404("No such incident in the simulator.")
    return redirect("zenduty-ui-incident", pk=incident.pk)


def incident_detail(request, pk: int):
    """One incident: acknowledge, resolve, change priority, add a note; notes and alerts."""
    incident = get_object_or_404(Incident.objects.select_related(
        "account", "service__team", "team_priority", "assigned_to", "escalation_policy", "sla"), pk=pk)
    account = incident.account
    note_form = NoteForm(request.POST if request.POST.get("action") == "note" else None)
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "acknowledge":
                operations.set_status(incident, Incident.ACKNOWLEDGED)
                messages.success(request, "Acknowledged (webhook 'acknowledged' queued if configured).")
            elif action == "resolve":
                operations.set_status(incident, Incident.RESOLVED)
                messages.success(request, "Resolved (webhook 'resolved' queued if configured).")
            elif action == "priority":
                priority = Priority.objects.filter(team=incident.service.team,
                                                   pk=request.POST.get("priority") or 0).first()
                operations.set_priority(incident, priority)
                messages.success(request, f"Priority set to {priority.name if priority else 'none'}. "
                                          "Zenduty sends no webhook for this: the portal has to poll.")
            elif action == "note" and note_form.is_valid():
                operations.add_note(incident, _ui_user(account), note_form.cleaned_data["note"])
                messages.success(request, "Note added. Zenduty sends no webhook for notes: the portal has to poll.")
            else:
                return _render_detail(request, incident, note_form)
        except operations.TransitionError as exc:
            messages.error(request, str(exc))
        return redirect("zenduty-ui-incident", pk=incident.pk)
    return _render_detail(request, incident, note_form)


def _render_detail(request, incident: Incident, note_form: NoteForm):
    return render(request, "sandbox_zenduty/incident.html", {
        **_base_context(incident.account), "incident": incident, "note_form": note_form,
        "notes": incident.notes.select_related("user").order_by("creation_date", "id"),
        "alerts": incident.alerts.select_related("integration").order_by("creation_date", "id"),
        "priorities": incident.service.team.priorities.all(),
        "webhook_targets": operations.outgoing_integrations(incident.service),
    })


def service_list(request):
    """Services by team, with their integrations, linking to the Outgoing Webhooks page."""
    account = _account(request)
    if account is None:
        return redirect("zenduty-ui")
    services = (Service.objects.filter(team__account=account).select_related("team", "team_priority")
                .prefetch_related("integrations__application").order_by("team__id", "creation_date", "id"))
    return render(request, "sandbox_zenduty/services.html", {**_base_context(account), "services": services})


class WebhookForm(forms.Form):
    """The Outgoing Webhooks configuration screen of one integration."""

    url = forms.CharField(label="Webhook URL", max_length=1000, required=False,
                          widget=forms.TextInput(attrs={"size": 80}),
                          help_text="Where Zenduty POSTs triggered / acknowledged / resolved events.")
    is_enabled = forms.BooleanField(required=False, label="Enabled")
    auth_type = forms.ChoiceField(choices=WebhookAuth.choices, label="Authentication")
    signing_secret = forms.CharField(required=False, label="Signing key", strip=True,
                                     widget=forms.PasswordInput(render_value=False),
                                     help_text="HMAC only. Paste a key to use it, or leave empty to keep the "
                                               "current one (or get a generated one if there is none).")
    basic_username = forms.CharField(required=False, label="Basic auth username")
    basic_password = forms.CharField(required=False, label="Basic auth password",
                                     widget=forms.PasswordInput(render_value=False),
                                     help_text="Leave empty to keep the current password.")

    def clean_url(self):
        url = self.cleaned_data["url"].strip()
        if url:
            try:
                URLValidator(schemes=["http", "https"])(url)
            except ValidationError:
                raise ValidationError("Enter a full http(s) URL.") from None
        return url


@require_http_methods(["GET", "POST"])
def service_webhooks(request, pk: int):
    """Configure the service's Outgoing Webhooks integrations (the by-hand step of real Zenduty).

    A generated or regenerated signing key is shown once, right after saving.
    """
    service = get_object_or_404(Service.objects.select_related("team__account"), pk=pk)
    account = service.team.account
    integrations = list(Integration.objects.filter(service=service,
                                                   application__extension=OUTGOING_WEBHOOKS_EXTENSION)
                        .order_by("id"))
    shown_secret = None
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "add":
            integration = demo.add_integration(service, OUTGOING_WEBHOOKS_EXTENSION,
                                               created_by=_ui_user(account))
            messages.success(request, f"Added the Outgoing Webhooks integration “{integration.name}”.")
            return redirect("zenduty-ui-service-webhooks", pk=service.pk)
        integration = next((i for i in integrations if str(i.pk) == request.POST.get("integration")), None)
        if integration is None:
            messages.error(request, "Unknown integration.")
            return redirect("zenduty-ui-service-webhooks", pk=service.pk)
        if action == "regenerate":
            integration.signing_secret = ids.new_signing_secret()
            integration.save(update_fields=["signing_secret"])
            shown_secret = (integration.pk, integration.signing_secret)
        elif action == "save":
            form = WebhookForm(request.POST, prefix=str(integration.pk))
            if not form.is_valid():
                messages.error(request, "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
                return redirect("zenduty-ui-service-webhooks", pk=service.pk)
            data = form.cleaned_data
            integration.outgoing_url = data["url"]
            integration.is_enabled = data["is_enabled"]
            integration.auth_type = data["auth_type"]
            integration.basic_username = data["basic_username"]
            if data["basic_password"]:
                integration.basic_password = data["basic_password"]
            if data["signing_secret"]:
                integration.signing_secret = data["signing_secret"]
            elif data["auth_type"] == WebhookAuth.HMAC and not integration.signing_secret:
                integration.signing_secret = ids.new_signing_secret()
                shown_secret = (integration.pk, integration.signing_secret)
            integration.save()
            messages.success(request, f"Saved “{integration.name}”.")
        if shown_secret is None:
            return redirect("zenduty-ui-service-webhooks", pk=service.pk)
    rows = [{
        "integration": i,
        "form": WebhookForm(prefix=str(i.pk), initial={
            "url": i.outgoing_url, "is_enabled": i.is_enabled, "auth_type": i.auth_type,
            "basic_username": i.basic_username}),
        "secret": shown_secret[1] if shown_secret and shown_secret[0] == i.pk else None,
    } for i in integrations]
    return render(request, "sandbox_zenduty/service_webhooks.html", {
        **_base_context(account), "service": service, "rows": rows})


class SettingsForm(forms.ModelForm):
    class Meta:
        model = SimulatorSettings
        fields = ["rate_limits", "per_second_limits", "note_list_shape"]
        widgets = {"note_list_shape": forms.RadioSelect}


@require_http_methods(["GET", "POST"])
def simulator_settings(request):
    """Switch the simulated rate limits on or off, and choose the form of note lists."""
    row = SimulatorSettings.load()
    form = SettingsForm(request.POST or None, instance=row)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Settings saved.")
        return redirect("zenduty-ui-settings")
    return render(request, "sandbox_zenduty/settings.html", {**_base_context(_account(request)), "form": form})
