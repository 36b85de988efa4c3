from django.apps import AppConfig


class SandboxXurrentConfig(AppConfig):
    name = "sandbox.xurrent"
    label = "sandbox_xurrent"
    verbose_name = "Sandbox: Xurrent"

    def ready(self) -> None:
        """Listen to the outbox so webhooks learn how their deliveries fare (auto-disabling, §6.4)."""
        from sandbox import deliveries
        from sandbox.xurrent import webhooks

        deliveries.on_attempt("xurrent", webhooks.record_attempt)
