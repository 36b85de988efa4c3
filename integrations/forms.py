"""Admin forms for outgoing integrations, in the order of Zenduty's screens.

Step 1 (:class:`ChooseServiceForm`): the Zenduty service (teams and services
listed live) and the Xurrent tenant. Step 2 (:class:`OutgoingIntegrationForm`,
also the change form): the service instance (listed live, searchable), the
direction, note sync, default impact and the custom priority → impact mapping,
which needs the team's priorities and so the choice of step 1.

Lists come from integrations.services (cached for a minute); a listing that
fails becomes a message on the form, never a server error.
"""
from __future__ import annotations

from django import forms
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse

from connections.models import ConnectionStatus, XurrentTenant, ZendutyAccount
from integrations import services
from integrations.models import (DEFAULT_CATEGORIES, MIN_PRIORITIES_FOR_CUSTOM_MAPPING, REQUEST_CATEGORIES, Direction,
                                 Impact, OutgoingIntegration)
from integrations.services import IntegrationError, Option


CUSTOM_MAPPING_REQUIREMENT = f"Requires at least {MIN_PRIORITIES_FOR_CUSTOM_MAPPING} priorities in Zenduty"
# The direction choices in the seed guide's words (the model's shorter labels serve lists and history).
DIRECTION_LABELS = {
    Direction.XURRENT_TO_ZENDUTY: "Xurrent → Zenduty: Requests in Xurrent create incidents in Zenduty",
    Direction.ZENDUTY_TO_XURRENT: "Zenduty → Xurrent: Incidents in Zenduty create requests in Xurrent",
    Direction.BIDIRECTIONAL: "Bidirectional (Zenduty ↔ Xurrent): Requests and incidents mirror across both "
                             "platforms",
}


def too_few_priorities_message(team_name: str, count: int) -> str:
    noun = "priority" if count == 1 else "priorities"
    return (f"{CUSTOM_MAPPING_REQUIREMENT}: the {team_name or 'selected'} team has {count} {noun} — add "
            f"priorities in Zenduty or use the Default Impact.")


def failed_connection_warning(connection) -> str:
    kind = "Xurrent tenant" if isinstance(connection, XurrentTenant) else "Zenduty account"
    error = f": {connection.last_error}" if connection.last_error else ""
    return f"The last check of the {kind} '{connection}' failed{error}"


CONFIRM_FAILED_LABEL = "Use it anyway: I know its last connection check failed"


def _confirm_failed(form: forms.Form, connections: list, field: str) -> None:
    """Refuse a FAILED connection unless the confirmation box is ticked."""
    failed = [c for c in connections if c is not None and c.status == ConnectionStatus.FAILED]
    form.failed_connections = failed
    if failed and not form.cleaned_data.get("confirm_failed_connections"):
        reasons = "; ".join(failed_connection_warning(c) for c in failed)
        form.add_error(field, f"{reasons}. Fix it under Connections, or tick “{CONFIRM_FAILED_LABEL}” to "
                              f"continue.")


def _duplicate_service_message(existing: OutgoingIntegration, service_name: str) -> str:
    return (f"The Zenduty service '{service_name}' already has an outgoing integration ({existing}). "
            f"A service can have only one: open that integration to change it.")


def _duplicate_instance_message(existing: OutgoingIntegration, instance_name: str) -> str:
    return (f"The Xurrent service instance '{instance_name}' is already linked to the Zenduty service "
            f"'{existing.zenduty_service_name or existing.zenduty_service_id}' ({existing}). An instance can "
            f"have only one integration.")


# -- step 1 ---------------------------------------------------------------------------------
class ChooseServiceForm(forms.Form):
    """Step 1 of adding: which Zenduty service, and which Xurrent tenant."""

    zenduty_service = forms.ChoiceField(
        label="Zenduty service",
        help_text="Teams and services as Zenduty lists them now (Teams → Service → Integrations).")
    tenant = forms.ModelChoiceField(
        queryset=XurrentTenant.objects.order_by("name"), label="Tenant",
        help_text="The Xurrent account whose service instance the service is linked to.")
    confirm_failed_connections = forms.BooleanField(required=False, label=CONFIRM_FAILED_LABEL)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.load_errors: list[str] = []
        self.failed_connections: list = []
        self.choices_by_value: dict[str, tuple[ZendutyAccount, services.ZendutyTeam, Option]] = {}
        accounts = list(ZendutyAccount.objects.order_by("name"))
        taken = set(OutgoingIntegration.objects.values_list("zenduty_account_id", "zenduty_service_id"))
        groups = []
        for account in accounts:
            try:
                teams = services.zenduty_teams(account)
            except IntegrationError as exc:
                self.load_errors.append(exc.message)
                continue
            for team in teams:
                options = []
                for service in team.services:
                    value = f"{account.pk}:{team.id}:{service.id}"
                    self.choices_by_value[value] = (account, team, service)
                    taken_note = " — already has an outgoing integration" if (account.pk, service.id) in taken else ""
                    options.append((value, f"{service.name}{taken_note}"))
                if options:
                    label = team.name if len(accounts) == 1 else f"{account.name} · {team.name}"
                    groups.append((f"Team: {label}", options))
        self.fields["zenduty_service"].choices = [("", "— choose a service —"), *groups]
        self.fields["tenant"].label_from_instance = self._tenant_label
        tenants = list(XurrentTenant.objects.values_list("pk", flat=True)[:2])
        if len(tenants) == 1:
            self.fields["tenant"].initial = tenants[0]
        self.has_accounts = bool(accounts)
        self.has_tenants = XurrentTenant.objects.exists()
        self.known_failed = [*ZendutyAccount.objects.filter(status=ConnectionStatus.FAILED),
                             *XurrentTenant.objects.filter(status=ConnectionStatus.FAILED)]
        if not self.known_failed:
            self.fields["confirm_failed_connections"].widget = forms.HiddenInput()

    @staticmethod
    def _tenant_label(tenant: XurrentTenant) -> str:
        failed = " — last check failed" if tenant.status == ConnectionStatus.FAILED else ""
        return f"{tenant}{failed}"

    def clean(self):
        cleaned = super().clean()
        chosen = self.choices_by_value.get(cleaned.get("zenduty_service") or "")
        if chosen:
            account, team, service = chosen
            cleaned.update(account=account, team=team, service=service)
            existing = OutgoingIntegration.objects.filter(zenduty_account=account,
                                                          zenduty_service_id=service.id).first()
            if existing:
                self.add_error("zenduty_service", _duplicate_service_message(existing, service.name))
            _confirm_failed(self, [account, cleaned.get("tenant")], "confirm_failed_connections")
        return cleaned

    def step2_query(self) -> dict[str, str]:
        """The GET parameters that open step 2 with this choice."""
        data = self.cleaned_data
        query = {"zenduty_account": str(data["account"].pk), "zenduty_team_id": data["team"].id,
                 "zenduty_service_id": data["service"].id, "tenant": str(data["tenant"].pk)}
        if data.get("confirm_failed_connections"):
            query["confirm_failed_connections"] = "1"
        return query


# -- step 2 / change ----------------------------------------------------------------------------
class ServiceInstanceSelect(forms.Select):
    """A select of service instances with a search box that asks the admin's JSON endpoint.

    Without JavaScript it is a plain select of the first instances.
    """

    def __init__(self, attrs=None, choices=()):
        super().__init__(attrs, choices)
        self.search_url = ""
        self.tenant_id = ""
        self.complete = True

    def render(self, name, value, attrs=None, renderer=None):
        select = super().render(name, value, attrs, renderer)
        return render_to_string("admin/integrations/outgoingintegration/service_instance_widget.html", {
            "select": select, "search_url": self.search_url, "tenant_id": self.tenant_id,
            "complete": self.complete, "select_id": (attrs or {}).get("id", f"id_{name}"),
        })


class PriorityMappingWidget(forms.Widget):
    """A table: one row per team priority, each with an impact select."""

    def __init__(self, attrs=None):
        super().__init__(attrs)
        self.priorities: list[Option] = []
        self.team_name = ""
        self.message = ""
        # The priority ids of the custom mapping as saved (None when none is in use): a priority
        # of the team missing from it is new in Zenduty and marked so (integrations.drift).
        self.saved: set[str] | None = None

    def value_from_datadict(self, data, files, name):
        return {p.id: data.get(f"{name}__{p.id}", "") for p in self.priorities}

    def value_omitted_from_data(self, data, files, name):
        return not any(f"{name}__{p.id}" in data for p in self.priorities)

    def render(self, name, value, attrs=None, renderer=None):
        value = value or {}
        rows = []
        for priority in self.priorities:
            current = value.get(priority.id, "")
            if isinstance(current, dict):
                current = current.get("impact", "")
            rows.append({"id": priority.id, "name": priority.name, "field": f"{name}__{priority.id}",
                         "current": current, "new": self.saved is not None and priority.id not in self.saved})
        return render_to_string("admin/integrations/outgoingintegration/priority_mapping_widget.html", {
            "rows": rows, "impacts": Impact.choices, "message": self.message, "team_name": self.team_name,
        })


class PriorityMappingField(forms.Field):
    """Collects ``{priority_id: impact}``; the form checks it against the team's priorities."""

    widget = PriorityMappingWidget

    def to_python(self, value):
        return {str(k): (v.get("impact", "") if isinstance(v, dict) else str(v or "")) for k, v in
                (value or {}).items()}

    def has_changed(self, initial, data):
        return self.to_python(initial) != self.to_python(data)


class SecretInput(forms.PasswordInput):
    def __init__(self):
        super().__init__(render_value=False, attrs={"autocomplete": "new-password"})


class OutgoingIntegrationForm(forms.ModelForm):
    """Step 2 of adding, and the change form."""

    service_instance_id = forms.CharField(
        label="Service Instance", widget=ServiceInstanceSelect,
        help_text="Listed live from the tenant. Type in the search box to find one among many.")
    priority_mapping = PriorityMappingField(required=False, label="Priority → impact")
    categories = forms.MultipleChoiceField(
        choices=REQUEST_CATEGORIES, required=False, initial=list(DEFAULT_CATEGORIES),
        widget=forms.CheckboxSelectMultiple, label="Request categories",
        help_text="Xurrent requests of these categories create Zenduty incidents (Xurrent → Zenduty).")
    confirm_failed_connections = forms.BooleanField(required=False, widget=forms.HiddenInput)
    new_zenduty_signing_secret = forms.CharField(
        required=False, strip=True, widget=SecretInput(), label="Zenduty signing key",
        help_text="Only if Zenduty generated its own signing key for the outgoing webhook: paste it here. "
                  "Stored encrypted. Leave blank to keep the current key.")

    class Meta:
        model = OutgoingIntegration
        fields = ["zenduty_account", "zenduty_team_id", "zenduty_service_id", "tenant", "service_instance_id",
                  "direction", "sync_notes", "sync_internal_xurrent_notes", "public_zenduty_notes", "categories",
                  "default_impact", "use_custom_mapping", "priority_mapping", "enabled"]
        widgets = {name: forms.HiddenInput for name in
                   ("zenduty_account", "zenduty_team_id", "zenduty_service_id", "tenant")}
        # The words of Zenduty's "Add Outgoing Integration → Xurrent" screen (the seed guide).
        labels = {"sync_notes": "Sync Notes", "use_custom_mapping": "Custom Impact Mapping (optional)",
                  "default_impact": "Default Impact"}
        help_texts = {
            "default_impact": "The impact of Xurrent requests created from incidents, unless the custom mapping "
                              "names one for the incident's priority.",
            "use_custom_mapping": f"{CUSTOM_MAPPING_REQUIREMENT}. Map each of the team's priorities to a Xurrent "
                                  f"impact. Both ways: an incident created from a request gets the highest-ranked "
                                  f"priority (P1 first) mapped to the request's impact; when none is, the "
                                  f"service's default priority.",
            "sync_notes": "Copy notes between the incident and the request, in the integration's direction(s), "
                          "each note once and attributed to its author. Zenduty notes are read by polling "
                          "(within about a minute on pairs people work on).",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.live_errors: list[str] = []
        self.instance_name = ""
        self.duplicate_reported = False
        self.failed_connections: list = []
        self.account, self.tenant = self._context_objects()
        if self.adding and any(c is not None and c.status == ConnectionStatus.FAILED
                               for c in (self.account, self.tenant)):
            # A connection failed after step 1 (or step 1 was skipped): ask here, visibly.
            field = self.fields["confirm_failed_connections"]
            field.widget, field.label = forms.CheckboxInput(), CONFIRM_FAILED_LABEL
        if "direction" in self.fields:
            self.fields["direction"].choices = [(value, DIRECTION_LABELS.get(value, label))
                                                for value, label in self.fields["direction"].choices]
        self.team = self.service = None
        self.priorities: list[Option] | None = None
        self._load_zenduty()
        self._load_instances()

    # -- what the form is about ------------------------------------------------------------
    @property
    def adding(self) -> bool:
        return not self.instance.pk

    def _value(self, name: str) -> str:
        if name in self.fields:
            value = self[name].value()
        else:
            value = getattr(self.instance, f"{name}_id" if name in ("zenduty_account", "tenant") else name, "")
        return "" if value is None else str(value)

    def _context_objects(self):
        if not self.adding:
            return self.instance.zenduty_account, self.instance.tenant
        account_id, tenant_id = self._value("zenduty_account"), self._value("tenant")
        account = ZendutyAccount.objects.filter(pk=account_id).first() if account_id.isdigit() else None
        tenant = XurrentTenant.objects.filter(pk=tenant_id).first() if tenant_id.isdigit() else None
        return account, tenant

    @property
    def context_complete(self) -> bool:
        return bool(self.account and self.tenant and self.service)

    def _load_zenduty(self) -> None:
        team_id, service_id = self._value("zenduty_team_id"), self._value("zenduty_service_id")
        if not (self.account and team_id and service_id):
            return
        try:
            found = services.zenduty_service(self.account, team_id, service_id)
        except IntegrationError as exc:
            self.live_errors.append(exc.message)
            found = None
        if found:
            self.team, self.service = found
        elif not self.adding:  # keep working with what was stored
            self.team = services.ZendutyTeam(self.instance.zenduty_team_id, self.instance.zenduty_team_name)
            self.service = Option(self.instance.zenduty_service_id, self.instance.zenduty_service_name)
            if not self.live_errors:
                self.live_errors.append(f"Zenduty no longer lists the service '{self.service.name}' in the team "
                                        f"'{self.team.name}'. Was it deleted or moved?")
        widget = self.fields["priority_mapping"].widget
        widget.team_name = self.team.name if self.team else ""
        try:
            self.priorities = services.zenduty_priorities(self.account, team_id)
        except IntegrationError as exc:
            self.live_errors.append(exc.message)
            widget.message = f"The priorities cannot be listed right now. {exc.message}"
            return
        widget.priorities = self.priorities
        if not self.adding and self.instance.use_custom_mapping:
            widget.saved = {str(k) for k in (self.instance.priority_mapping or {})}
        if len(self.priorities) < MIN_PRIORITIES_FOR_CUSTOM_MAPPING:
            widget.priorities = []
            widget.message = too_few_priorities_message(widget.team_name, len(self.priorities))
            if not self.instance.use_custom_mapping:
                # Not offered at all (a box already ticked stays tickable, so it can be unticked).
                field = self.fields["use_custom_mapping"]
                field.disabled, field.help_text = True, widget.message

    def _load_instances(self) -> None:
        field = self.fields["service_instance_id"]
        widget = field.widget
        widget.search_url, widget.tenant_id = search_url(), str(self.tenant.pk) if self.tenant else ""
        choices: list[tuple[str, str]] = [("", "— choose a service instance —")]
        if self.tenant:
            try:
                listing = services.xurrent_service_instances(self.tenant)
                choices += [(o.id, o.name) for o in listing.options]
                widget.complete = listing.complete
            except IntegrationError as exc:
                self.live_errors.append(exc.message)
        current = self._value("service_instance_id")
        if current and current not in {c[0] for c in choices}:
            # Picked by search, or stored: keep it selectable.
            name = self.instance.service_instance_name if current == self.instance.service_instance_id else ""
            choices.append((current, name or f"Service instance {current}"))
        widget.choices = choices

    def summary(self) -> dict:
        """What step 1 chose, for the page header."""
        return {"account": self.account, "tenant": self.tenant,
                "team": self.team.name if self.team else "", "service": self.service.name if self.service else ""}

    # -- validation ---------------------------------------------------------------------
    def clean_service_instance_id(self):
        value = (self.cleaned_data.get("service_instance_id") or "").strip()
        if not value:
            raise forms.ValidationError("Choose the Xurrent service instance.")
        self.instance_name = dict(self.fields["service_instance_id"].widget.choices).get(value, "")
        if not self.adding and value == self.instance.service_instance_id and self.instance.service_instance_name:
            self.instance_name = self.instance.service_instance_name
            return value
        if not self.tenant:
            return value
        listed = {o.id for o in self._listed_instances()}
        if value not in listed:
            # Chosen through the search box: make sure it exists.
            try:
                self.instance_name = services.xurrent_service_instance(self.tenant, value).name
            except IntegrationError as exc:
                raise forms.ValidationError(exc.message) from exc
        return value

    def _listed_instances(self) -> list[Option]:
        try:
            return services.xurrent_service_instances(self.tenant).options
        except IntegrationError:
            return []

    def clean(self):
        cleaned = super().clean()
        if self.adding:
            hidden_errors = [name for name in ("zenduty_account", "zenduty_team_id", "zenduty_service_id", "tenant")
                             if name in self.errors]
            for name in hidden_errors:
                del self.errors[name]
            if hidden_errors or not (self.account and self.tenant):
                self.add_error(None, "Choose the Zenduty service and the Xurrent tenant first (step 1).")
                return cleaned
            if not self.service:
                if not self.live_errors:
                    self.add_error(None, "Zenduty does not list this service (any more). Choose it again in "
                                         "step 1.")
                else:
                    self.add_error(None, " ".join(self.live_errors))
                return cleaned
            existing = OutgoingIntegration.objects.filter(zenduty_account=self.account,
                                                          zenduty_service_id=self.service.id).first()
            if existing:
                self.duplicate_reported = True
                self.add_error(None, _duplicate_service_message(existing, self.service.name))
            _confirm_failed(self, [self.account, self.tenant], "confirm_failed_connections")
        instance_id = cleaned.get("service_instance_id")
        if instance_id and self.tenant:
            existing = (OutgoingIntegration.objects.filter(tenant=self.tenant, service_instance_id=instance_id)
                        .exclude(pk=self.instance.pk).first())
            if existing:
                self.duplicate_reported = True
                self.add_error("service_instance_id", _duplicate_instance_message(
                    existing, self.instance_name or instance_id))
        self._clean_mapping(cleaned)
        return cleaned

    def _clean_mapping(self, cleaned) -> None:
        posted = cleaned.get("priority_mapping") or {}
        use = cleaned.get("use_custom_mapping")
        if self.priorities is None:
            # Priorities unknown (Zenduty unreachable): keep the stored mapping.
            cleaned["priority_mapping"] = self.instance.priority_mapping or {}
            if use and (self.adding or "use_custom_mapping" in self.changed_data):
                self.add_error("use_custom_mapping", "The team's priorities cannot be listed right now, so the "
                                                     "custom mapping cannot be checked. Try again in a minute.")
            return
        team_name = self.team.name if self.team else ""
        if use and len(self.priorities) < MIN_PRIORITIES_FOR_CUSTOM_MAPPING:
            self.add_error("use_custom_mapping", too_few_priorities_message(team_name, len(self.priorities)))
        elif use:
            missing = [p.name for p in self.priorities if posted.get(p.id) not in Impact.values]
            if missing:
                names = ", ".join(missing)
                self.add_error("priority_mapping", f"Choose a Xurrent impact for every priority of the "
                                                   f"{team_name} team; missing: {names}.")
        # "rank": the team's order as Zenduty lists it (P1 first); the reverse rule (impact →
        # priority, syncengine.mapping) picks the highest-ranked priority, and PostgreSQL's
        # jsonb does not keep key order.
        cleaned["priority_mapping"] = {p.id: {"name": p.name, "impact": posted[p.id], "rank": rank}
                                       for rank, p in enumerate(self.priorities) if posted.get(p.id) in Impact.values}

    def validate_unique(self):
        # The constraints' own messages would repeat the friendlier ones of clean();
        # without those, the check still runs (two admins adding at once).
        if not self.duplicate_reported:
            super().validate_unique()

    # -- saving -------------------------------------------------------------------------
    def save(self, commit=True):
        integration = super().save(commit=False)
        if self.team:
            integration.zenduty_team_name = self.team.name
        if self.service:
            integration.zenduty_service_name = self.service.name
        if self.instance_name:
            integration.service_instance_name = self.instance_name
        integration.priority_mapping = self.cleaned_data.get("priority_mapping") or {}
        secret = self.cleaned_data.get("new_zenduty_signing_secret")
        if secret and not self.adding:
            integration.zenduty_signing_secret = secret
            integration.zenduty_signing_key_pasted = True
        if commit:
            integration.save()
            self.save_m2m()
        return integration


class ViewOnlyIntegrationForm(forms.ModelForm):
    """The change page of those who may only look: every field is shown read-only, from what is
    stored, so nothing is listed live (no call to Zenduty or Xurrent per page view)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.live_errors: list[str] = []
        self.account, self.tenant = self.instance.zenduty_account, self.instance.tenant

    def summary(self) -> dict:
        return {"account": self.account, "tenant": self.tenant, "team": self.instance.zenduty_team_name,
                "service": self.instance.zenduty_service_name}


def search_url() -> str:
    """The admin's JSON search of service instances ('' when the admin is not mounted)."""
    try:
        return reverse("admin:integrations_outgoingintegration_service_instances")
    except NoReverseMatch:
        return ""
