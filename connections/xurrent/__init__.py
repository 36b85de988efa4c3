"""Client for the Xurrent (formerly 4me) REST API, OAuth and signed webhooks."""
from connections.xurrent import hosts
from connections.xurrent.client import XurrentClient
from connections.xurrent.webhooks import InvalidDelivery, SignedDelivery, read_signed_delivery, verify_delivery

__all__ = ["InvalidDelivery", "SignedDelivery", "XurrentClient", "hosts", "read_signed_delivery", "verify_delivery"]
