"""In-memory stand-ins for the Xurrent and Zenduty clients.

For the unit tests of provisioning rules that are awkward to stage over HTTP
(a verification overtaking the create answer, a lost answer, a deleted
policy). Everything that can be is tested end-to-end against the sandbox.
"""
from __future__ import annotations

import itertools
import uuid

from connections import errors


class FakeClient:
    """Opens and closes like connections.http.BaseClient (a context manager)."""

    closed = False

    def close(self):
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class FakeXurrent(FakeClient):
    def __init__(self):
        self.ids = itertools.count(100)
        self.policies: dict[int, dict] = {}
        self.webhooks: dict[int, dict] = {}
        self.instances = [{"id": 1, "name": "Website (Production)"}, {"id": 2, "name": "Mail"}]
        self.calls: list[tuple] = []
        self.fail: dict[str, int] = {}  # method -> fail on the n-th next call (1 = next)

    def _call(self, name, *args):
        self.calls.append((name, *args))
        if name in self.fail:
            self.fail[name] -= 1
            if self.fail[name] <= 0:
                del self.fail[name]
                raise errors.ServerError(status=500, service="xurrent")

    def _get(self, table, record_id):
        try:
            return table[int(record_id)]
        except (KeyError, ValueError):
            raise errors.NotFoundError(status=404, service="xurrent") from None

    # policies
    def create_webhook_policy(self, jwt_alg="rs256", jwt_audience=None, jwt_claim_expires_in=None, disabled=False):
        self._call("create_webhook_policy")
        policy = {"id": next(self.ids), "jwt_alg": jwt_alg, "jwt_audience": jwt_audience,
                  "jwt_claim_expires_in": jwt_claim_expires_in, "disabled": disabled}
        self.policies[policy["id"]] = policy
        return {**policy, "public_key_pem": f"-----BEGIN PUBLIC KEY-----\nfake{policy['id']}\n-----END PUBLIC KEY-----"}

    def get_webhook_policy(self, policy_id):
        self._call("get_webhook_policy", policy_id)
        return dict(self._get(self.policies, policy_id))

    def list_webhook_policies(self, fields=None):
        self._call("list_webhook_policies")
        return [dict(p) for p in self.policies.values()]

    def update_webhook_policy(self, policy_id, **fields):
        self._call("update_webhook_policy", policy_id)
        self._get(self.policies, policy_id).update(fields)

    def delete_webhook_policy(self, policy_id):
        self._call("delete_webhook_policy", policy_id)
        self._get(self.policies, policy_id)
        del self.policies[int(policy_id)]

    # webhooks
    def create_webhook(self, event, uri, webhook_policy_id=None, name=None, description=None, disabled=False):
        self._call("create_webhook", event)
        hook = {"id": next(self.ids), "event": event, "uri": uri, "disabled": disabled,
                "webhook_policy": {"id": webhook_policy_id} if webhook_policy_id else None, "name": name}
        self.webhooks[hook["id"]] = hook
        return dict(hook)

    def get_webhook(self, webhook_id):
        self._call("get_webhook", webhook_id)
        return dict(self._get(self.webhooks, webhook_id))

    def update_webhook(self, webhook_id, **fields):
        self._call("update_webhook", webhook_id, fields)
        hook = self._get(self.webhooks, webhook_id)
        if "webhook_policy_id" in fields:
            hook["webhook_policy"] = {"id": fields.pop("webhook_policy_id")}
        hook.update(fields)
        return dict(hook)

    def delete_webhook(self, webhook_id):
        self._call("delete_webhook", webhook_id)
        self._get(self.webhooks, webhook_id)
        del self.webhooks[int(webhook_id)]

    def list_webhooks(self):
        self._call("list_webhooks")
        return [dict(h) for h in self.webhooks.values()]

    # service instances
    def iter_service_instances(self, name=None, status=None):
        self._call("iter_service_instances")
        return iter(list(self.instances))

    def search_service_instances(self, query, limit=20):
        self._call("search_service_instances", query)
        return [i for i in self.instances if query.casefold() in i["name"].casefold()][:limit]

    def get_service_instance(self, instance_id):
        self._call("get_service_instance", instance_id)
        for item in self.instances:
            if str(item["id"]) == str(instance_id):
                return dict(item)
        raise errors.NotFoundError(status=404, service="xurrent")


class FakeZenduty(FakeClient):
    OPS, PLATFORM = "team-ops", "team-platform"

    def __init__(self):
        self.teams = [{"unique_id": self.OPS, "name": "Operations"},
                      {"unique_id": self.PLATFORM, "name": "Platform"}]
        self.services = {self.OPS: [{"unique_id": "svc-web", "name": "Website"},
                                    {"unique_id": "svc-api", "name": "API"}],
                         self.PLATFORM: [{"unique_id": "svc-db", "name": "Database"}]}
        self.priorities = {self.OPS: [{"unique_id": f"p{i}", "name": f"P{i}"} for i in range(1, 6)],
                           self.PLATFORM: [{"unique_id": f"q{i}", "name": f"L{i}"} for i in range(1, 4)]}
        self.applications = [{"unique_id": "app-api", "name": "API"},
                             {"unique_id": "app-outgoing", "name": "Outgoing Webhooks"}]
        self.integrations: dict[tuple, dict] = {}
        self.calls: list[tuple] = []

    def list_teams(self):
        self.calls.append(("list_teams",))
        return list(self.teams)

    def list_services(self, team_id):
        return list(self.services.get(team_id, []))

    def list_priorities(self, team_id):
        return list(self.priorities.get(team_id, []))

    def list_applications(self):
        return list(self.applications)

    def list_integrations(self, team_id, service_id):
        return [i for (t, s, _), i in self.integrations.items() if (t, s) == (team_id, service_id)]

    def create_integration(self, team_id, service_id, data):
        self.calls.append(("create_integration", team_id, service_id))
        record = {"unique_id": str(uuid.uuid4()), "is_enabled": True, **data}
        self.integrations[(team_id, service_id, record["unique_id"])] = record
        return dict(record)

    def delete_integration(self, team_id, service_id, integration_id):
        self.calls.append(("delete_integration", integration_id))
        if self.integrations.pop((team_id, service_id, integration_id), None) is None:
            raise errors.NotFoundError(status=404, service="zenduty")

    def update_integration(self, team_id, service_id, integration_id, fields):
        # Same contract as ZendutyClient.update_integration (a PATCH of the named fields).
        if not fields:
            raise ValueError("update_integration needs at least one field to change.")
        self.calls.append(("update_integration", integration_id, dict(fields)))
        record = self.integrations.get((team_id, service_id, integration_id))
        if record is None:
            raise errors.NotFoundError(status=404, service="zenduty")
        record.update(fields)
        return dict(record)
