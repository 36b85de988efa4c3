"""Verification of signed Xurrent webhook deliveries.

A webhook linked to a webhook policy delivers ``{"jwt": "<compact JWS>"}``
instead of the plain JSON; the ``data`` claim holds the usual message
(https://developer.xurrent.com/v1/webhooks, .../v1/webhook_policies). It is
signed with the policy's private key; the portal keeps the public key that
Xurrent showed once, when the policy was created.
"""
from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass

import jwt

# The request events the portal subscribes to, and the handshake Xurrent sends to
# each new webhook (https://developer.xurrent.com/v1/webhooks/).
EVENT_TYPES = ("request.create", "request.update", "request.status-changed", "request.note-added")
VERIFY_EVENT = "webhook.verify"
# "Test webhook" (POST /webhooks/:id/test) sends a sample message about this request id, whatever the
# account holds (https://developer.xurrent.com/v1/webhooks/): a request.create for it names no request.
TEST_OBJECT_ID = "12345"
TEST_DELIVERY_REASON = ("Xurrent's webhook test: its sample message always names request #12345, which this "
                        "account does not have; nothing to sync.")

# Only asymmetric algorithms: Xurrent never reveals an HMAC secret, and "none"
# would accept anything. The algorithm comes from the stored policy, never
# from the token header (algorithm-confusion attacks).
ALLOWED_ALGORITHMS = {"rs256": "RS256", "rs384": "RS384", "rs512": "RS512",
                      "es256": "ES256", "es384": "ES384", "es512": "ES512"}


class InvalidDelivery(Exception):
    """A delivery that must not be trusted. ``reason`` is a short code for logs
    and history (e.g. ``"bad_signature"``); ``str()`` explains it to a person."""

    def __init__(self, reason: str, message: str):
        self.reason = reason
        super().__init__(message)


@dataclass(frozen=True)
class SignedDelivery:
    """A verified delivery: its ``data`` claim (the webhook message), all claims, and the token."""

    data: dict
    claims: dict
    token: str

    @property
    def message_id(self) -> str:
        """What identifies this signed message, whatever unsigned headers came with it:
        ``jti:<jti>``, or ``jti-sha256:<hex>`` of a jti that is long or not printable
        (a lone UTF-16 surrogate, NUL: no database column holds those), or
        ``sha256:<hex>`` of the token when it carries no jti."""
        jti = self.claims.get("jti")
        if jti not in (None, ""):
            jti = str(jti)
            if len(jti) <= 128 and jti.isprintable():
                return f"jti:{jti}"
            return f"jti-sha256:{hashlib.sha256(jti.encode('utf-8', 'surrogatepass')).hexdigest()}"
        return f"sha256:{hashlib.sha256(self.token.encode()).hexdigest()}"


def verify_delivery(body_bytes: bytes, *, public_key_pem: str, jwt_alg: str, audience: str | None, issuer: str,
                    leeway: int = 60) -> dict:
    """Check a signed delivery and return its ``data`` claim (the webhook message);
    see :func:`read_signed_delivery`."""
    return read_signed_delivery(body_bytes, public_key_pem=public_key_pem, jwt_alg=jwt_alg, audience=audience,
                                issuer=issuer, leeway=leeway).data


def read_signed_delivery(body_bytes: bytes, *, public_key_pem: str, jwt_alg: str, audience: str | None,
                         issuer: str, leeway: int = 60) -> SignedDelivery:
    """Check a signed delivery and return its message, claims and token.

    Verifies the signature with the policy's key and algorithm, ``iss``
    (the account URL), ``aud`` (the policy's ``jwt_audience``; when that is
    blank the token must carry none), ``exp`` and ``nbf`` with ``leeway``
    seconds for clock skew, and requires ``iat`` and ``exp``: the portal's
    policies always set ``jwt_claim_expires_in``, and a token without ``exp``
    would stay valid for ever.

    :raises InvalidDelivery: with reason ``malformed``, ``no_jwt``,
        ``unsupported_algorithm``, ``wrong_algorithm``, ``bad_key``,
        ``bad_signature``, ``expired``, ``not_yet_valid``, ``wrong_audience``,
        ``wrong_issuer`` or ``missing_claim``.
    """
    algorithm = ALLOWED_ALGORITHMS.get((jwt_alg or "").lower())
    if algorithm is None:
        raise InvalidDelivery("unsupported_algorithm", f"Webhook policies with algorithm {jwt_alg!r} cannot be "
                                                       f"verified; use one of {', '.join(ALLOWED_ALGORITHMS)}.")
    try:
        body = json.loads(body_bytes)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply (an unhandled 500 otherwise)
        raise InvalidDelivery("malformed", "The delivery body is not JSON.") from None
    token = body.get("jwt") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise InvalidDelivery("no_jwt", "The delivery has no jwt property, but its webhook policy requires one.")
    if not token.isascii():  # PyJWT would fail encoding a lone surrogate (an unhandled 500 otherwise)
        raise InvalidDelivery("malformed", "The token is not a valid JWT (a compact JWT is ASCII).")
    try:
        claims = jwt.decode(token, _verification_key(algorithm, public_key_pem), algorithms=[algorithm], audience=audience or None,
                            issuer=issuer, leeway=leeway, options={"require": ["iss", "iat", "exp"]})
    except jwt.PyJWTError as exc:  # InvalidKeyError is not an InvalidTokenError
        raise _invalid(exc) from None
    except RecursionError:  # PyJWT turns it into DecodeError itself; kept in case a version does not
        raise InvalidDelivery("malformed", "The token is not a valid JWT (nested too deeply).") from None
    data = claims.get("data")
    if not isinstance(data, dict):
        raise InvalidDelivery("malformed", "The signed delivery has no data object.")
    return SignedDelivery(data=data, claims=claims, token=token)


@functools.lru_cache(maxsize=256)
def _verification_key(algorithm: str, public_key_pem: str):
    """The policy's PEM as a key object. Parsing a PEM costs more than checking an RS256
    signature, and a policy's key never changes (a new key is a new PEM string), so each
    process parses it once. A key that does not parse raises ``InvalidKeyError`` every
    time (exceptions are not cached)."""
    return jwt.get_algorithm_by_name(algorithm).prepare_key(public_key_pem)


def _invalid(exc: jwt.PyJWTError) -> InvalidDelivery:
    # Order matters: several of these subclass DecodeError or each other.
    if isinstance(exc, jwt.InvalidSignatureError):
        return InvalidDelivery("bad_signature", "The signature does not match the webhook policy's public key.")
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return InvalidDelivery("wrong_algorithm", "The token is not signed with the webhook policy's algorithm.")
    if isinstance(exc, jwt.InvalidKeyError):
        return InvalidDelivery("bad_key", "The stored public key does not fit the webhook policy's algorithm.")
    if isinstance(exc, jwt.ExpiredSignatureError):
        return InvalidDelivery("expired", "The token has expired.")
    if isinstance(exc, jwt.ImmatureSignatureError):
        return InvalidDelivery("not_yet_valid", "The token is not valid yet (nbf or iat in the future).")
    if isinstance(exc, jwt.MissingRequiredClaimError):
        if exc.claim in ("aud", "iss"):
            reason = "wrong_audience" if exc.claim == "aud" else "wrong_issuer"
            return InvalidDelivery(reason, f"The token has no {exc.claim} claim.")
        return InvalidDelivery("missing_claim", f"The token has no {exc.claim} claim.")
    if isinstance(exc, jwt.InvalidAudienceError):
        return InvalidDelivery("wrong_audience", "The token is meant for another audience.")
    if isinstance(exc, jwt.InvalidIssuerError):
        return InvalidDelivery("wrong_issuer", "The token was issued by another account.")
    return InvalidDelivery("malformed", f"The token is not a valid JWT ({type(exc).__name__}).")
