"""manage.py seed_demo: the sandbox demo (see sandbox/demo.py). Idempotent."""
import os

from django.core.management.base import BaseCommand

from sandbox import demo


class Command(BaseCommand):
    help = "Seed the simulated Xurrent and Zenduty, the portal's connections to them and a demo integration."

    def add_arguments(self, parser):
        parser.add_argument("--no-check", action="store_true",
                            help="Do not check connections or provision (no web server needed).")

    def handle(self, *args, **options):
        live = not options["no_check"]
        result = demo.seed(admin_password=os.environ.get("DEMO_ADMIN_PASSWORD"), check_connections=live,
                           with_integration=live)
        if result.admin_created:
            self.stdout.write("Created the demo login 'admin'.")
        if result.auditor_created:
            self.stdout.write("Created the demo login 'auditor' (Auditors: sees every page, changes nothing; "
                              "same password).")
        for note in result.notes:
            self.stdout.write(f"  {note}")
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
