"""Admin forms for connections, mirroring Zenduty's "Configure the connection".

Secrets are write-only: the input is never filled with the stored value, and
leaving it blank when editing keeps the stored one. Saving runs a live check
(connections.services) and refuses to store a connection that cannot work.
"""
from __future__ import annotations

from django import forms

from connections.models import XurrentEnvironment, XurrentRegion, XurrentTenant, ZendutyAccount, account_id_validator
from connections.services import (ConnectionCheckError, already_connected_message, check_xurrent, check_zenduty,
                                  zenduty_account_connected, zenduty_account_identity)
from connections.zenduty import destinations


class SecretField(forms.CharField):
    """A password input that never renders the stored value back."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("strip", True)
        kwargs.setdefault("widget", forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}))
        super().__init__(*args, **kwargs)


class LiveCheckedForm(forms.ModelForm):
    """Shared behaviour: write-only secret field(s) and a live check in clean()."""

    secret_fields: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.check_result = None
        editing = bool(self.instance and self.instance.pk)
        for name in self.secret_fields:
            field = self.fields[name]
            field.required = not editing
            if editing:
                field.help_text = "Stored encrypted and never shown. Leave blank to keep the current value."

    def clean(self):
        cleaned = super().clean()
        for name in self.secret_fields:
            if not cleaned.get(name) and self.instance.pk and name not in self.errors:
                # Blank on edit means "keep": fetch the stored value for the check.
                cleaned[name] = getattr(type(self.instance).objects.get(pk=self.instance.pk), name)
        if not self.errors:
            self.precheck(cleaned)
        if self.errors:
            return cleaned
        candidate = self._candidate(cleaned)
        try:
            self.check_result = self.run_check(candidate)
        except ConnectionCheckError as exc:
            if exc.field and exc.field in self.fields:
                self.add_error(exc.field, exc.message)
            else:
                self.add_error(None, exc.message)
        return cleaned

    def _candidate(self, cleaned):
        candidate = type(self.instance)(pk=self.instance.pk)
        for field in self._meta.model._meta.concrete_fields:
            if field.name in cleaned:
                setattr(candidate, field.name, cleaned[field.name])
            elif self.instance.pk and not field.primary_key:
                setattr(candidate, field.attname, getattr(self.instance, field.attname))
        return candidate

    def precheck(self, cleaned) -> None:
        """Cheap validation before the live check (add errors to stop it)."""

    def run_check(self, candidate):
        """Prove the connection works; raise ConnectionCheckError otherwise."""
        raise NotImplementedError

    def save(self, commit=True):
        instance = super().save(commit=False)
        for name in self.secret_fields:
            setattr(instance, name, self.cleaned_data[name])
        instance.mark_checked("", save=False)
        if commit:
            instance.save()
            self.save_m2m()
        return instance


class XurrentTenantForm(LiveCheckedForm):
    """Xurrent: Account ID, Client ID, Client Secret, Region, Environment."""

    secret_fields = ("client_secret",)
    client_secret = SecretField(label="Client Secret",
                                help_text="From the OAuth application's token in Xurrent (Settings → OAuth "
                                          "Applications). Stored encrypted and never shown again.")

    class Meta:
        model = XurrentTenant
        fields = ["name", "account_id", "client_id", "client_secret", "region", "environment"]

    def clean_account_id(self):
        account_id = (self.cleaned_data.get("account_id") or "").strip()
        # Model validators run only after clean(); check the format here so
        # that a malformed ID never reaches Xurrent.
        account_id_validator(account_id)
        return account_id

    def clean_environment(self):
        environment = self.cleaned_data.get("environment")
        region = self.data.get(self.add_prefix("region"))
        if environment == XurrentEnvironment.DEMO and region and region != XurrentRegion.GLOBAL:
            raise forms.ValidationError("Xurrent's Demo environment exists only in the Global region.")
        return environment

    def precheck(self, cleaned):
        # Django checks the unique constraint only after clean(); catch a
        # duplicate here so that we do not call Xurrent for nothing.
        duplicate = XurrentTenant.objects.filter(
            account_id=cleaned.get("account_id"), region=cleaned.get("region"),
            environment=cleaned.get("environment")).exclude(pk=self.instance.pk)
        if duplicate.exists():
            self.add_error("account_id", "This account is already connected for this region and environment.")

    def run_check(self, candidate):
        account = check_xurrent(candidate)
        # Who the portal acts as, read by the check (GET /me): saved with the tenant.
        self.instance.portal_person_id = candidate.portal_person_id
        self.instance.portal_person_name = candidate.portal_person_name
        return account


class ZendutyAccountForm(LiveCheckedForm):
    """Zenduty: a name, the API token and (rarely changed) the base URL."""

    secret_fields = ("api_token",)
    base_url = forms.URLField(label="Base URL", assume_scheme="https", initial="https://www.zenduty.com",
                              help_text="Leave as https://www.zenduty.com unless Zenduty told you otherwise. "
                                        "Changing it asks for the API token again.")
    api_token = SecretField(label="API token",
                            help_text="Zenduty → Account → API Keys → Create API Key. Stored encrypted and "
                                      "never shown again.")

    class Meta:
        model = ZendutyAccount
        fields = ["name", "api_token", "base_url"]

    def clean_base_url(self):
        base_url = self.cleaned_data["base_url"].rstrip("/")
        # Before any call: https on zenduty.com (or an address the operator
        # allowed), and no private, loopback or link-local address.
        problem = destinations.base_url_problem(base_url)
        if problem:
            raise forms.ValidationError(problem)
        return base_url

    def clean(self):
        # Blank keeps the stored token, but only for the address it was
        # entered for: a new base URL gets the token typed again, so the stored
        # one never goes anywhere an admin did not send it knowingly.
        base_url = self.cleaned_data.get("base_url")
        if self.instance.pk and base_url and not self.cleaned_data.get("api_token"):
            stored = ZendutyAccount.objects.filter(pk=self.instance.pk).values_list("base_url", flat=True).first()
            if stored is not None and not destinations.same_base_url(base_url, stored):
                self.add_error("api_token", "You changed the base URL: enter the API token again. The stored "
                                            "token is never sent to a new address.")
        return super().clean()

    def run_check(self, candidate):
        teams = check_zenduty(candidate)
        # Which Zenduty account the token belongs to, as Zenduty says: a second connection of it is
        # refused (the constraint on the column decides between two submits at once; see the admin).
        identity = zenduty_account_identity(teams)
        existing = zenduty_account_connected(identity, exclude_pk=self.instance.pk)
        if existing is not None:
            raise ConnectionCheckError(None, already_connected_message(existing))
        self.instance.account_unique_id = identity
        return teams
