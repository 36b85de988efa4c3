from django.apps import AppConfig


class SandboxZendutyConfig(AppConfig):
    name = "sandbox.zenduty"
    label = "sandbox_zenduty"
    verbose_name = "Sandbox: Zenduty"
