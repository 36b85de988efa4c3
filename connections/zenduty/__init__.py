"""Client for the Zenduty (Xurrent IMR) REST API and its outgoing webhooks."""
from connections.zenduty import constants
from connections.zenduty.client import ZendutyClient
from connections.zenduty.webhooks import (EVENT_TYPES, SIGNATURE_HEADER, compute_signature, parse_outgoing_webhook,
                                          verify_signature)

__all__ = ["EVENT_TYPES", "SIGNATURE_HEADER", "ZendutyClient", "compute_signature", "constants",
           "parse_outgoing_webhook", "verify_signature"]
