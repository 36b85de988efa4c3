"""The by-hand pages of the simulated Xurrent (``/sandbox/xurrent/ui/``).

A person plays the service desk here: raise a request, add notes, change
the impact, complete or reopen it. Changes are made as the account's UI
person (``Howard Tanner``), not the API user, and fire the same webhooks as
API changes (§6.1: "webhooks fire for changes made in the UI and via the API").
"""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from sandbox.xurrent import operations as ops
from sandbox.xurrent import vocabulary as v
from sandbox.xurrent import webhooks as hooks
from sandbox.xurrent.conventions import Invalid, Origin
from sandbox.xurrent.models import Account, Request, ServiceInstance, SimulatorSettings, Webhook, WebhookPolicy


class RaiseForm(forms.Form):
    subject = forms.CharField(max_length=255)
    service_instance = forms.ModelChoiceField(queryset=ServiceInstance.objects.none(), required=False)
    category = forms.ChoiceField(choices=v.choices(v.CATEGORIES), initial="incident")
    impact = forms.ChoiceField(choices=[("", "—")] + v.choices(v.IMPACTS), initial="medium", required=False)
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)

    def __init__(self, *args, account: Account, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["service_instance"].queryset = ServiceInstance.objects.filter(account=account).order_by("name")


class NoteForm(forms.Form):
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))
    internal = forms.BooleanField(required=False, help_text="Internal notes are visible to specialists only.")


class ImpactForm(forms.Form):
    impact = forms.ChoiceField(choices=v.choices(v.IMPACTS))


class StatusForm(forms.Form):
    status = forms.ChoiceField(choices=[(s, label) for s, label in v.STATUSES.items() if s != "completed"])


class CompleteForm(forms.Form):
    completion_reason = forms.ChoiceField(choices=v.choices(v.COMPLETION_REASONS), initial="solved")
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)


class SettingsForm(forms.ModelForm):
    class Meta:
        model = SimulatorSettings
        fields = ["rate_limit", "rate_window_seconds", "burst_limit", "burst_window_seconds",
                  "strict_account_header"]


def _account(request: HttpRequest) -> Account | None:
    wanted = request.GET.get("account") or request.POST.get("account")
    qs = Account.objects.order_by("account_id")
    return (qs.filter(account_id=wanted).first() if wanted else None) or qs.first()


def _report(request: HttpRequest, exc: Invalid) -> None:
    for _field, message in exc.errors:
        messages.error(request, message)


@require_http_methods(["GET", "POST"])
def index(request: HttpRequest) -> HttpResponse:
    """Requests of an account, the raise form, webhooks, policies and simulator settings."""
    account = _account(request)
    if account is None:
        return render(request, "sandbox_xurrent/index.html", {"account": None})
    knobs = account.simulator_settings()
    raise_form = RaiseForm(request.POST if request.POST.get("action") == "raise" else None, account=account)
    settings_form = SettingsForm(request.POST if request.POST.get("action") == "settings" else None, instance=knobs)
    if request.method == "POST":
        here = f"{reverse('sandbox-xurrent-ui')}?account={account.account_id}"
        if request.POST.get("action") == "raise" and raise_form.is_valid():
            data = raise_form.cleaned_data
            body = {"subject": data["subject"], "category": data["category"], "impact": data["impact"] or None,
                    "service_instance_id": data["service_instance"].pk if data["service_instance"] else None,
                    "note": data["note"]}
            try:
                created = ops.create_request(account, account.ui_person(), body, Origin.of(request, account.instance),
                                             default_source="")
            except Invalid as exc:
                _report(request, exc)
            else:
                messages.success(request, f"Request #{created.pk} raised.")
                return redirect("sandbox-xurrent-ui-request", created.pk)
        elif request.POST.get("action") == "settings" and settings_form.is_valid():
            settings_form.save()
            messages.success(request, "Simulator settings saved.")
            return redirect(here)
    return render(request, "sandbox_xurrent/index.html", {
        "account": account,
        "accounts": Account.objects.order_by("account_id"),
        "requests": Request.objects.filter(account=account).select_related("service_instance", "team")
                                   .order_by("-id")[:100],
        "raise_form": raise_form,
        "settings_form": settings_form,
        "webhooks": Webhook.objects.filter(account=account).select_related("webhook_policy").order_by("id"),
        "policies": WebhookPolicy.objects.filter(account=account).order_by("id"),
        "ui_person": account.ui_person(),
        "api_people": sorted({app.person.name for app in account.oauth_applications.select_related("person")}),
    })


@require_http_methods(["GET", "POST"])
def request_detail(request: HttpRequest, request_id: int) -> HttpResponse:
    """One request: its fields and notes, with forms to add a note, change impact or status, complete it."""
    record = get_object_or_404(Request.objects.select_related("account", "service_instance", "team", "member",
                                                              "requested_by", "created_by"), pk=request_id)
    action = request.POST.get("action")
    forms_by_action = {
        "note": NoteForm(request.POST if action == "note" else None),
        "impact": ImpactForm(request.POST if action == "impact" else None, initial={"impact": record.impact}),
        "status": StatusForm(request.POST if action == "status" else None, initial={"status": record.status}),
        "complete": CompleteForm(request.POST if action == "complete" else None),
    }
    if request.method == "POST" and action in forms_by_action and forms_by_action[action].is_valid():
        data = forms_by_action[action].cleaned_data
        actor, origin = record.account.ui_person(), Origin.of(request, record.account.instance)
        try:
            if action == "note":
                ops.add_note(record, actor, data["text"], origin, internal=data["internal"])
                done = "Note added."
            elif action == "impact":
                ops.update_request(record, actor, {"impact": data["impact"]}, origin)
                done = "Impact changed."
            elif action == "status":
                ops.update_request(record, actor, {"status": data["status"]}, origin)
                done = "Status changed."
            else:
                ops.update_request(record, actor, {"status": "completed", "completion_reason":
                                                   data["completion_reason"], "note": data["note"]}, origin)
                done = "Request completed."
        except Invalid as exc:
            _report(request, exc)
        else:
            messages.success(request, done)
            return redirect("sandbox-xurrent-ui-request", record.pk)
    return render(request, "sandbox_xurrent/request.html", {
        "record": record,
        "account": record.account,
        "notes": record.notes.select_related("person").order_by("id"),
        "forms": forms_by_action,
        "ui_person": record.account.ui_person(),
    })


@require_POST
def webhook_action(request: HttpRequest, webhook_id: int) -> HttpResponse:
    """Resend a webhook's verification, or send it a test message."""
    webhook = get_object_or_404(Webhook.objects.select_related("account", "webhook_policy"), pk=webhook_id)
    origin, actor = Origin.of(request, webhook.account.instance), webhook.account.ui_person()
    if request.POST.get("action") == "resend":
        if hooks.require_verification(webhook, actor, origin):
            messages.success(request, f"Sent a fresh webhook.verify to webhook {webhook.pk}.")
        else:
            messages.success(request, f"Webhook {webhook.pk}: its address is already verified by another webhook.")
    elif request.POST.get("action") == "test":
        if hooks.send_test(webhook, actor, origin):
            messages.success(request, f"Queued a test message for webhook {webhook.pk}.")
        else:
            messages.error(request, f"Webhook {webhook.pk} is not verified: nothing was sent.")
    return redirect(f"{reverse('sandbox-xurrent-ui')}?account={webhook.account.account_id}#webhooks")
