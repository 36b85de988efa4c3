from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _apply_roles(using, apps=None, **kwargs) -> None:
    from roles import services

    services.apply_roles(apps=apps, using=using)


class RolesConfig(AppConfig):
    name = "roles"
    verbose_name = "Staff and audit"

    def ready(self) -> None:
        # The migration creates the groups; every later migrate (and a test database's flush) brings
        # them up to date, so that a model added later is visible to auditors too.
        post_migrate.connect(_apply_roles, sender=self, dispatch_uid="roles-apply")
