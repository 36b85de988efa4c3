"""A whole demo run with logging at DEBUG, then every place the portal writes searched for every secret.

The run: ``seed_demo``'s seed against the simulators over HTTP (connections
checked, so an OAuth token is fetched and cached; the integration provisioned,
so a webhook policy and a Zenduty signing key exist), a Zenduty account
checked with a wrong API token, incidents and requests synced both ways with
status changes, a failed create (a 500 from Xurrent) and a forged delivery.

The secrets: the Xurrent client secret, the Zenduty API token (and the wrong
one typed), the Zenduty signing key, the cached OAuth access token, the
private key of the tenant's Xurrent webhook policy (held by the simulated
Xurrent), ``SECRET_KEY`` and the field encryption keys.

Where they must not be: every line the configured log handler wrote (the
portal's logging config, root at DEBUG, the simulators' lines included as they
share the process); every admin page of the portal's models (lists and each
object's page); the raw rows of the portal's own tables (connections,
integrations, syncengine, django-q, the cache, the admin log), the django-q
task arguments and results unpickled. The simulators' own tables are the
other side and keep their copies.
"""
from __future__ import annotations

import io
import logging
from urllib.parse import quote

import pytest
from django.conf import settings
from django.contrib import admin
from django.db import connection
from django.urls import NoReverseMatch, reverse

from connections.models import XurrentTenant, ZendutyAccount
from connections.secrets import RedactSecretsFilter
from integrations.models import OutgoingIntegration
from tests.syncengine.test_sync import Demo

pytestmark = pytest.mark.django_db(transaction=True)

PORTAL_TABLES = ("connections_", "integrations_", "syncengine_", "django_q_", "portal_cache", "django_admin_log")
WRONG_TOKEN = "typed-by-mistake-zenduty-token-5e0b"


@pytest.fixture
def debug_log():
    """What the portal's console handler (with its redaction filter) writes, at DEBUG."""
    root = logging.getLogger()
    [handler] = [h for h in root.handlers if any(isinstance(f, RedactSecretsFilter) for f in h.filters)]
    stream = io.StringIO()
    previous_stream, previous_level = handler.setStream(stream), root.level
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.setLevel(previous_level)
        handler.setStream(previous_stream)


def demo_run(live_server) -> Demo:
    from connections.services import test_connection
    from sandbox import demo as sandbox_demo
    from sandbox import faults

    sandbox_demo.seed(check_connections=True, with_integration=True)  # what seed_demo does, checks included
    Demo.settle()
    wrong = ZendutyAccount.objects.create(name="Typo", api_token=WRONG_TOKEN)
    assert test_connection(wrong)  # refused, with an error stored and shown
    demo = Demo(live_server)
    first = demo.trigger(title="Checkout errors")
    demo.settle()
    demo.set_incident_status(first, 2)
    demo.settle()
    request = demo.raise_request(subject="Search is slow")
    demo.settle()
    demo.change_request(request, status="completed", completion_reason="solved")
    demo.settle()
    faults.inject("xurrent", "error_500", method="POST", path_prefix="/v1/requests")
    demo.trigger(title="Payments failing")  # its create fails once: an error stored, a retry scheduled
    demo.settle()
    return demo


def secrets_of_the_run() -> dict[str, str]:
    from connections.models import XurrentAccessToken
    from sandbox.xurrent.models import WebhookPolicy

    tenant = XurrentTenant.objects.get(account_id="wdc")
    secrets = {"Xurrent client secret": tenant.client_secret,
               "Zenduty API token": ZendutyAccount.objects.get(name="Demo Zenduty (sandbox)").api_token,
               "wrong Zenduty API token": WRONG_TOKEN,
               "Zenduty signing key": OutgoingIntegration.objects.get().zenduty_signing_secret,
               "OAuth access token": XurrentAccessToken.objects.get(tenant=tenant).token,
               "SECRET_KEY": settings.SECRET_KEY}
    secrets.update({f"field encryption key {i}": key for i, key in enumerate(settings.FIELD_ENCRYPTION_KEYS, 1)})
    [policy] = WebhookPolicy.objects.all()
    body = [line for line in policy.private_key_pem.splitlines() if line and not line.startswith("-----")]
    secrets.update({f"policy private key, line {i}": line for i, line in enumerate(body[1:-1], 2)})  # full lines
    assert all(len(value) >= 16 for value in secrets.values()), secrets.keys()
    return secrets


def admin_pages(client) -> dict[str, str]:
    """Every admin list of the portal's models and the page of each object (the simulators' excluded)."""
    pages = {}
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label.startswith("sandbox"):
            continue
        info = (model._meta.app_label, model._meta.model_name)
        urls = [reverse("admin:%s_%s_changelist" % info)]
        for pk in model._default_manager.values_list("pk", flat=True)[:50]:
            try:
                urls.append(reverse("admin:%s_%s_change" % info, args=[pk]))
            except NoReverseMatch:
                break
        for url in urls:
            response = client.get(url, follow=True)
            assert response.status_code == 200, url
            pages[url] = response.content.decode()
    return pages


def raw_rows() -> dict[str, str]:
    """Every row of the portal's own tables as the database holds it."""
    rows = {}
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            if not table.startswith(PORTAL_TABLES):
                continue
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            rows[table] = "\n".join(" | ".join(_text(value) for value in row) for row in cursor.fetchall())
    return rows


def _text(value) -> str:
    if isinstance(value, (bytes, memoryview)):
        return bytes(value).decode("latin-1")
    return str(value)


def django_q_contents() -> dict[str, str]:
    """django-q's pickled columns, unpickled (a secret there would be base64 in the raw row)."""
    from django_q.models import OrmQ, Schedule, Task
    from django_q.signing import SignedPackage

    found = {f"task {t.pk}": repr((t.func, t.args, t.kwargs, t.result)) for t in Task.objects.all()}
    found.update({f"schedule {s.pk}": repr((s.func, s.args, s.kwargs)) for s in Schedule.objects.all()})
    found.update({f"queued {q.pk}": repr(SignedPackage.loads(q.payload)) for q in OrmQ.objects.all()})
    return found


def test_no_secret_of_a_demo_run_is_in_a_log_line_page_error_or_row(sandbox, admin_client, debug_log):
    demo = demo_run(sandbox)
    secrets = secrets_of_the_run()

    log = debug_log.getvalue()
    pages = admin_pages(admin_client)
    rows = raw_rows()
    queue = django_q_contents()

    # The run did what it should, and the haystacks hold what they should (this test cannot pass empty).
    assert len(demo.requests()) == 2 and len(demo.incidents()) == 3
    assert " DEBUG " in log and "syncengine.webhook.accepted" in log and "xurrent.call" in log
    assert any("/syncengine/inboundevent/" in url for url in pages) and len(pages) > 40
    assert rows["connections_xurrentaccesstoken"] and rows["syncengine_outboundcall"] and queue
    assert any("500" in text for text in pages.values())  # the failed create's error is shown
    from sandbox.zenduty.models import Integration

    assert Integration.objects.filter(signing_secret=secrets["Zenduty signing key"]).exists()  # the other side

    haystacks = {"log": log, **{f"page {url}": text for url, text in pages.items()},
                 **{f"table {table}": text for table, text in rows.items()}, **queue}
    leaks = [(name, where) for name, secret in secrets.items() for where, text in haystacks.items()
             if secret in text or quote(secret, safe="") in text]
    assert not leaks, leaks
