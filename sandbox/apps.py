from django.apps import AppConfig


class SandboxConfig(AppConfig):
    name = "sandbox"
    verbose_name = "Sandbox (simulated Xurrent and Zenduty)"

    def ready(self) -> None:
        """Resume waiting webhook deliveries on the first request a (re)started server process serves."""
        from django.core.signals import request_started

        from sandbox import deliveries

        request_started.connect(deliveries.resume_on_first_request, dispatch_uid="sandbox-deliveries-resume")
