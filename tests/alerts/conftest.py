"""The sync-engine tests' cast (tenant, account, integration) serves here too."""
from tests.syncengine.conftest import account, integration, rsa_key, tenant  # noqa: F401
