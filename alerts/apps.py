from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = "Alerts"

    def ready(self) -> None:
        # The cheap hooks: a connection checked, an integration's sync error set or cleared.
        from alerts import hooks

        hooks.connect()
        from alerts.schedule import align_schedule

        post_migrate.connect(align_schedule, sender=self, dispatch_uid="alerts-schedule")
