from django.apps import AppConfig


class SyncEngineConfig(AppConfig):
    name = "syncengine"
    verbose_name = "Sync"

    def ready(self) -> None:
        # Every outbound API call becomes an OutboundCall row.
        from syncengine import history

        history.register()
