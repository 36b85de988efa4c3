"""Client for the Xurrent (formerly 4me) REST API, OAuth and signed webhooks."""
from connections.xurrent import hosts
from connections.xurrent.client import XurrentClient
from connections.xurrent.webhooks import InvalidDelivery, verify_delivery

__all__ = ["InvalidDelivery", "XurrentClient", "hosts", "verify_delivery"]
