"""``manage.py move_xurrent_webhooks``: one set of Xurrent webhooks per tenant instead of one per integration."""
from django.core.management.base import BaseCommand, CommandError

from integrations import provisioning


class Command(BaseCommand):
    help = ("Move the Xurrent webhook policy and webhooks each integration owned to its tenant's set "
            "(created first), then delete the old ones. Safe to run again; an interrupted run continues.")

    def handle(self, *args, **options):
        results = provisioning.move_to_tenant_webhooks()
        if not results:
            self.stdout.write("No integration has Xurrent webhooks of its own; nothing to move.")
            return
        for integration, moved, message in results:
            self.stdout.write(f"{integration}: " + ("moved to the tenant's webhooks" if moved else f"not moved: {message}"))
        failed = sum(1 for _, moved, _ in results if not moved)
        if failed:
            raise CommandError(f"{failed} integration(s) still have webhooks of their own; run the command again "
                               f"once the cause is fixed.")
