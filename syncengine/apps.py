from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _align_reconcile_schedule(**kwargs) -> None:
    from syncengine.reconcile import align_schedule

    align_schedule()


def _align_note_sweep_schedule(**kwargs) -> None:
    from syncengine.note_sweep import align_schedule

    align_schedule()


class SyncEngineConfig(AppConfig):
    name = "syncengine"
    verbose_name = "Sync"

    def ready(self) -> None:
        # Every outbound API call becomes an OutboundCall row.
        from syncengine import history

        history.register()
        # The sweep's interval follows SYNC_RECONCILE_MINUTES (its schedule is created by a migration).
        post_migrate.connect(_align_reconcile_schedule, sender=self, dispatch_uid="syncengine-reconcile-schedule")
        # The note sweep's follows SYNC_NOTE_SWEEP_MINUTES likewise.
        post_migrate.connect(_align_note_sweep_schedule, sender=self, dispatch_uid="syncengine-note-sweep-schedule")
