from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _align_priority_refresh_schedule(**kwargs) -> None:
    from integrations.team_priorities import align_schedule

    align_schedule()


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"

    def ready(self) -> None:
        # The refresh's interval follows ZENDUTY_PRIORITY_REFRESH_MINUTES (its schedule is created by a migration).
        post_migrate.connect(_align_priority_refresh_schedule, sender=self,
                             dispatch_uid="integrations-priority-refresh-schedule")
