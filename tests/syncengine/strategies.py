"""Hypothesis strategies for webhook deliveries, for the intake property tests.

What senders put in a delivery beyond the fixtures: lone UTF-16 surrogates
(an emoji cut in half), NUL, the non-standard numbers NaN / Infinity /
-Infinity, emoji, line separators, quotes and backslashes, in values and in
keys, in JSON written with escapes (``json.dumps``'s default) or as raw
UTF-8 (a lone surrogate then encoded as WTF-8, which Python's JSON reader
accepts). Everything the property tests generate comes from here: widen a
strategy (headers, content types, …) here, not in a test.
"""
from __future__ import annotations

import json
import math

from hypothesis import strategies as st

from connections.zenduty.constants import EVENT_TYPES as ZENDUTY_EVENTS
from connections.xurrent.webhooks import EVENT_TYPES as XURRENT_EVENTS
from tests.syncengine.conftest import fixture_json

# Characters that broke storing or showing a delivery, and their neighbours.
ODD_CHARACTERS = ("\ud83d", "\ude00", "\ud800", "\udfff", "\x00", "\ufffd", "\u2028", "\U0001f600", "\\", '"',
                  "\n", "\t")

# Odd characters first: hypothesis starts from, and shrinks towards, the first branch.
# (Not text(alphabet=one_of(…)): hypothesis merges character strategies into one
# range of code points, where the odd ones are almost never drawn.)
characters = st.one_of(st.sampled_from(ODD_CHARACTERS), st.characters())
texts = st.lists(characters, max_size=10).map("".join)
non_blank_texts = st.lists(characters, min_size=1, max_size=10).map("".join).filter(str.strip)
# The non-standard numbers first; st.floats() also has -0.0, subnormals and the largest finite floats.
numbers = st.one_of(st.sampled_from([math.nan, math.inf, -math.inf]),
                    st.integers(min_value=-(2 ** 70), max_value=2 ** 70), st.floats())
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
json_values = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=3), st.dictionaries(texts, children, max_size=3)), max_leaves=8)
# How the sender writes its JSON: ASCII with \uXXXX escapes, or raw UTF-8.
encodings = st.sampled_from(["escaped", "raw"])


def encode(value, encoding: str) -> bytes:
    """``value`` as a sender writes it: NaN and Infinity as the bare words Python's json writes."""
    if encoding == "escaped":
        return json.dumps(value).encode("ascii")
    # surrogatepass: a lone surrogate becomes the 3 bytes a careless encoder writes (WTF-8).
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


@st.composite
def zenduty_messages(draw) -> dict:
    """A well-formed Zenduty delivery (it has an event type and an incident id) full of odd values."""
    message = fixture_json(f"zenduty/{draw(st.sampled_from(sorted(ZENDUTY_EVENTS)))}.json")
    inner = message["payload"]
    inner["event_type"] = draw(st.one_of(st.sampled_from(sorted(ZENDUTY_EVENTS)), non_blank_texts))
    incident = inner["incident"]
    incident["unique_id"] = draw(st.one_of(non_blank_texts.map(lambda s: f"trunc-{s}"), numbers))
    for name in ("title", "summary", "status", "acknowledged_date", "resolved_date"):
        incident[name] = draw(st.one_of(texts, numbers, st.none()))
    incident["assigned_to"] = draw(st.dictionaries(texts, json_values, max_size=3))
    incident.update(draw(st.dictionaries(texts, json_values, max_size=2)))
    # Zenduty documents the {"payload": …} envelope; the unwrapped form is accepted too.
    return message if draw(st.booleans()) else inner


@st.composite
def xurrent_messages(draw) -> dict:
    """The ``data`` claim of a Xurrent delivery (it names an event) full of odd values."""
    message = fixture_json("xurrent/request.update.json")
    message["event"] = draw(st.one_of(st.sampled_from(sorted(set(XURRENT_EVENTS) | {"problem.create"})),
                                      non_blank_texts))
    message["object_id"] = draw(st.one_of(texts, numbers))
    message["person_name"] = draw(st.one_of(texts, numbers, st.none()))
    message["payload"] = draw(st.dictionaries(texts, json_values, max_size=4))
    message.update(draw(st.dictionaries(texts, json_values, max_size=2)))
    return message


# The token's own id: absent (the token's hash identifies it), odd, or longer than a column holds.
jtis = st.one_of(non_blank_texts, st.none(), st.lists(characters, min_size=129, max_size=160).map("".join))
# Claims besides the ones a policy checks; the time claims stay valid (bad ones are refused by design).
extra_claims = st.dictionaries(texts.filter(lambda name: name not in {"iss", "aud", "iat", "nbf", "exp", "jti",
                                                                       "sub", "data"}),
                               json_values, max_size=2)


# -- headers and content types -------------------------------------------------------------------------
# What else arrives with a delivery: any header a proxy, a load balancer or an attacker adds, with any
# value HTTP can carry (WSGI passes header values as latin-1 text), and any declared content type.
# The headers the intake reads are among the names, with odd values: a forged signature, a delivery id
# or origin naming someone else's delivery, credentials that must never be stored, and what the framework
# reads before the view (Accept: DRF once answered 406 to a delivery that did not ask for JSON).
HEADERS_READ = ("Accept", "X-Signature", "X-SIGNATURE", "x-xurrent-delivery", "x-xurrent-delivery-origin", "x-4me-delivery",
                "x-4me-delivery-origin", "Authorization", "Cookie", "X-Api-Token", "X-Auth-Secret",
                "Transfer-Encoding", "Content-Encoding", "X-Forwarded-Proto", "User-Agent")
# Every header the intake reads, each with a plausible value: an explicit example of the property tests
# (derandomized runs of 25 examples seldom draw many of them at once).
EVERY_HEADER_READ = {"Accept": "text/html", "X-Signature": "bm90IGl0", "x-xurrent-delivery": "d-1", "x-xurrent-delivery-origin": "first",
                     "x-4me-delivery": "d-2", "x-4me-delivery-origin": "first", "Authorization": "Bearer abc",
                     "Cookie": "sessionid=abc", "X-Api-Token": "abc", "X-Auth-Secret": "abc",
                     "Transfer-Encoding": "chunked", "Content-Encoding": "gzip", "X-Forwarded-Proto": "https",
                     "User-Agent": "Zenduty-Webhook/1.0"}
header_names = st.one_of(st.sampled_from(HEADERS_READ),
                         st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"),
                                 min_size=1, max_size=20)).filter(
    lambda name: name.lower().replace("_", "-") not in {"content-type", "content-length"})
header_characters = st.one_of(st.sampled_from(["\t", " ", "é", "\xff", "=", ";", ",", '"']),
                              st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"))
header_values = st.one_of(st.lists(header_characters, max_size=40).map("".join),
                          st.sampled_from(["", "chunked", "gzip", "bm90IGl0", "https", "1" * 2000, "text/html",
                                           "application/xml;q=0.9, */*;q=0"]))
# The headers the intake reads are drawn often (several per example), other names beside them.
header_sets = st.builds(lambda known, other: {**other, **known},
                        st.fixed_dictionaries({}, optional={name: header_values for name in HEADERS_READ}),
                        st.dictionaries(header_names, header_values, max_size=3))
content_types = st.one_of(
    st.sampled_from(["application/json", "application/json; charset=utf-8", "application/json; charset=latin-1",
                     "application/json; charset=utf-16", "text/plain", "text/html", "application/xml",
                     "application/x-www-form-urlencoded", "multipart/form-data; boundary=----x",
                     "application/octet-stream", "*/*", "", "application/jwt", "application/json;;;"]),
    st.lists(header_characters, max_size=30).map("".join))


def wsgi_headers(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` as WSGI environ keys (``X-Signature`` → ``HTTP_X_SIGNATURE``), as a server passes them;
    of two names that map to the same key the last wins, as it does there."""
    return {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()}
