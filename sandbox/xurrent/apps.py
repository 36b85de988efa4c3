from django.apps import AppConfig


class SandboxXurrentConfig(AppConfig):
    name = "sandbox.xurrent"
    label = "sandbox_xurrent"
    verbose_name = "Sandbox: Xurrent"
