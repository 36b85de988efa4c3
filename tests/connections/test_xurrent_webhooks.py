"""Signed Xurrent webhook deliveries: {"jwt": ...} verified against the webhook policy."""
import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from connections.xurrent import InvalidDelivery, verify_delivery

ISSUER = "https://wdc.xurrent.com"
AUDIENCE = "integrations provided by wdc@xurrent.com"
MESSAGE = {"webhook_id": 945, "account": ISSUER, "event": "request.note-added", "object_id": 219,
           "payload": {"note_id": 3455, "status": "in_progress"}}


def key_pair(kind):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048) if kind == "rsa" \
        else ec.generate_private_key(ec.SECP256R1())
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public_pem


@pytest.fixture(scope="module")
def rsa_keys():
    return key_pair("rsa")


@pytest.fixture(scope="module")
def ec_keys():
    return key_pair("ec")


def claims(**changes):
    now = int(time.time())
    base = {"data": MESSAGE, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "nbf": now, "exp": now + 600,
            "jti": "96119b558943acdecb001b75d9eee781", "sub": "945"}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def body(token):
    return json.dumps({"jwt": token}).encode()


def verify(raw, public_pem, alg="rs256", audience=AUDIENCE, issuer=ISSUER):
    return verify_delivery(raw, public_key_pem=public_pem, jwt_alg=alg, audience=audience, issuer=issuer)


def reason(raw, public_pem, **kw):
    with pytest.raises(InvalidDelivery) as caught:
        verify(raw, public_pem, **kw)
    return caught.value.reason


@pytest.mark.parametrize("alg", ["rs256", "rs512"])
def test_it_returns_the_data_of_a_good_rsa_delivery(rsa_keys, alg):
    private, public = rsa_keys
    assert verify(body(jwt.encode(claims(), private, algorithm=alg.upper())), public, alg=alg) == MESSAGE


def test_it_returns_the_data_of_a_good_ec_delivery(ec_keys):
    private, public = ec_keys
    assert verify(body(jwt.encode(claims(), private, algorithm="ES256")), public, alg="es256") == MESSAGE


def test_a_policy_without_audience_accepts_tokens_without_aud(rsa_keys):
    private, public = rsa_keys
    token = jwt.encode(claims(aud=None), private, algorithm="RS256")
    assert verify(body(token), public, audience="") == MESSAGE


def test_it_rejects_a_token_signed_with_another_key(rsa_keys):
    _, public = rsa_keys
    other_private, _ = key_pair("rsa")
    assert reason(body(jwt.encode(claims(), other_private, algorithm="RS256")), public) == "bad_signature"


def test_it_rejects_a_tampered_payload(rsa_keys):
    private, public = rsa_keys
    header, payload, signature = jwt.encode(claims(), private, algorithm="RS256").split(".")
    forged = claims(data={**MESSAGE, "object_id": 1})
    payload = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    assert reason(body(f"{header}.{payload}.{signature}"), public) == "bad_signature"


def test_it_rejects_the_wrong_audience(rsa_keys):
    private, public = rsa_keys
    assert reason(body(jwt.encode(claims(aud="someone else"), private, algorithm="RS256")), public) \
        == "wrong_audience"
    assert reason(body(jwt.encode(claims(aud=None), private, algorithm="RS256")), public) == "wrong_audience"
    # A token with an audience is not accepted by a policy that has none either.
    assert reason(body(jwt.encode(claims(), private, algorithm="RS256")), public, audience=None) == "wrong_audience"


def test_it_rejects_another_issuer(rsa_keys):
    private, public = rsa_keys
    token = jwt.encode(claims(iss="https://evil.xurrent.com"), private, algorithm="RS256")
    assert reason(body(token), public) == "wrong_issuer"
    assert reason(body(jwt.encode(claims(iss=None), private, algorithm="RS256")), public) == "wrong_issuer"


def test_it_rejects_an_expired_token_but_allows_clock_skew(rsa_keys):
    private, public = rsa_keys
    now = int(time.time())
    expired = jwt.encode(claims(iat=now - 900, nbf=now - 900, exp=now - 120), private, algorithm="RS256")
    assert reason(body(expired), public) == "expired"
    skewed = jwt.encode(claims(iat=now - 900, nbf=now - 900, exp=now - 30), private, algorithm="RS256")
    assert verify(body(skewed), public) == MESSAGE


def test_it_rejects_a_token_not_valid_yet(rsa_keys):
    private, public = rsa_keys
    later = int(time.time()) + 600
    assert reason(body(jwt.encode(claims(nbf=later), private, algorithm="RS256")), public) == "not_yet_valid"


def test_it_requires_iat(rsa_keys):
    private, public = rsa_keys
    assert reason(body(jwt.encode(claims(iat=None), private, algorithm="RS256")), public) == "missing_claim"


def test_it_requires_exp(rsa_keys):
    # Provisioning always sets jwt_claim_expires_in, so a genuine token expires;
    # one without exp (here issued ten years ago) would be valid for ever.
    private, public = rsa_keys
    old = int(time.time()) - 10 * 365 * 86400
    token = jwt.encode(claims(exp=None, iat=old, nbf=old), private, algorithm="RS256")
    with pytest.raises(InvalidDelivery, match="no exp claim") as caught:
        verify(body(token), public)
    assert caught.value.reason == "missing_claim"


def hs256_token(secret: bytes, payload: dict) -> str:
    """A token PyJWT refuses to make: HS256 with a public key as the HMAC secret."""
    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    signing_input = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{b64(json.dumps(payload).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def test_it_defeats_algorithm_confusion(rsa_keys):
    _, public = rsa_keys
    forged = hs256_token(public.encode(), claims())
    assert reason(body(forged), public) == "wrong_algorithm"


def test_the_algorithm_comes_from_the_policy_not_the_token(rsa_keys, ec_keys):
    rsa_private, _ = rsa_keys
    _, ec_public = ec_keys
    token = jwt.encode(claims(), rsa_private, algorithm="RS256")
    assert reason(body(token), ec_public, alg="es256") == "wrong_algorithm"


def test_it_reports_a_key_that_does_not_fit_the_algorithm(rsa_keys, ec_keys):
    private, _ = rsa_keys
    _, ec_public = ec_keys
    assert reason(body(jwt.encode(claims(), private, algorithm="RS256")), ec_public) == "bad_key"


@pytest.mark.parametrize("alg", ["none", "hs256", "HS512", ""])
def test_it_refuses_policies_without_a_public_key_algorithm(rsa_keys, alg):
    private, public = rsa_keys
    token = jwt.encode(claims(), private, algorithm="RS256")
    assert reason(body(token), public, alg=alg) == "unsupported_algorithm"


@pytest.mark.parametrize(("raw", "expected"), [
    (json.dumps(MESSAGE).encode(), "no_jwt"),  # an unsigned delivery where a signed one is expected
    (b'{"jwt": ""}', "no_jwt"),
    (b'{"jwt": 42}', "no_jwt"),
    (b"[1, 2]", "no_jwt"),
    (b"not json", "malformed"),
    (b"\xff\xfe", "malformed"),
    (b'{"jwt": "not.a.jwt"}', "malformed"),
    (b"[" * 100_000, "malformed"),  # json.loads raises RecursionError
    (body(base64.urlsafe_b64encode(b"{\"a\":" * 50_000).decode() + ".e30.c2ln"), "malformed"),  # in the header
], ids=["unsigned", "empty", "number", "list", "not-json", "not-utf8", "not-a-jwt", "deep-body", "deep-header"])
def test_it_rejects_bodies_without_a_usable_jwt(rsa_keys, raw, expected):
    _, public = rsa_keys
    assert reason(raw, public) == expected


def test_it_rejects_a_token_without_a_data_object(rsa_keys):
    private, public = rsa_keys
    token = jwt.encode(claims(data="not an object"), private, algorithm="RS256")
    assert reason(body(token), public) == "malformed"


def test_reasons_read_well(rsa_keys):
    _, public = rsa_keys
    with pytest.raises(InvalidDelivery, match="no jwt property"):
        verify(b"{}", public)
