"""Property-based: arbitrary headers and bodies never make POST /webhook answer 5xx, and no signed
delivery, however odd its ids and times, stops the worker's drain."""

import json
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config import contract
from igrelay.payloads import sign
from tests.conftest import SECRET
from workers import ingest

header_values = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=80).map(lambda b: "sha256=" + b.hex()),
    st.from_regex(r"sha256=[0-9a-fA-F]{0,70}", fullmatch=True),
)
headers = st.dictionaries(
    st.sampled_from(["X-Hub-Signature-256", "X-Hub-Signature", "Content-Type", "Content-Length-X", "X-Other"]),
    header_values.filter(lambda v: "\n" not in v and "\r" not in v and "\x00" not in v),
    max_size=4,
)
json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@settings(max_examples=400, deadline=None, suppress_health_check=HEALTH)
@given(body=st.binary(max_size=2000), hdrs=headers)
def test_arbitrary_requests_never_5xx(client, redis, body, hdrs):
    answer = client.post("/webhook", data=body, headers=hdrs)
    assert answer.status_code in (200, 400, 401, 413)
    if answer.status_code != 200:
        assert not answer.data.startswith(b"{")


@settings(max_examples=300, deadline=None, suppress_health_check=HEALTH)
@given(payload=json_like)
def test_signed_arbitrary_json_is_200_or_400(client, redis, payload):
    import json

    body = json.dumps(payload).encode()
    answer = client.post("/webhook", data=body, headers={"X-Hub-Signature-256": sign(body, SECRET)})
    assert answer.status_code in (200, 400)


@settings(max_examples=200, deadline=None, suppress_health_check=HEALTH)
@given(body=st.binary(max_size=500))
def test_nothing_unsigned_is_stored(client, redis, body):
    client.post("/webhook", data=body, headers={"X-Hub-Signature-256": sign(body, "not-the-secret")})
    assert redis.xlen(contract.INBOX) == 0


# Values that broke the drain: times that are no instant, ids that are no id (or are a Graph path).
odd_numbers = st.sampled_from([1e20, -1e20, float("nan"), float("inf"), float("-inf"), 10**30, -1, 0, 1e11 + 1])
odd_ids = st.one_of(
    st.sampled_from(["", "0", "../../refresh_access_token", "1:2", "me", " 1", "1e3", "١٢٣"]),
    st.integers(-(10**40), 10**40),
    st.none(),
    st.text(max_size=12),
)
odd_values = odd_numbers | odd_ids | json_like
comment_values = st.fixed_dictionaries(
    {"id": odd_ids, "media": st.fixed_dictionaries({"id": odd_ids}), "text": odd_values}
)
messaging_items = st.fixed_dictionaries(
    {"sender": st.fixed_dictionaries({"id": odd_ids}), "timestamp": odd_values},
    optional={
        "message": st.fixed_dictionaries({"mid": odd_ids}, optional={"attachments": odd_values}),
        "message_edit": odd_values,
        "reaction": odd_values,
        "optin": odd_values,
    },
)
entries = st.fixed_dictionaries(
    {"id": odd_ids, "time": odd_values},
    optional={
        "changes": st.lists(
            st.fixed_dictionaries(
                {
                    "field": st.sampled_from(["comments", "live_comments", "mentions", "story_insights", "messages"]),
                    "value": comment_values
                    | st.dictionaries(st.sampled_from(["media_id", "reach", "exits"]), odd_values),
                }
            ),
            max_size=3,
        ),
        "messaging": st.lists(messaging_items, max_size=2),
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=HEALTH)
@given(batch=st.lists(entries, min_size=1, max_size=4))
def test_no_signed_delivery_stops_the_drain(client, redis, settings, batch):
    for entry in batch:
        body = json.dumps({"object": "instagram", "entry": [entry]}).encode()  # NaN, Infinity as Python writes them
        answer = client.post("/webhook", data=body, headers={"X-Hub-Signature-256": sign(body, SECRET)})
        assert answer.status_code == 200
    ingest.drain(redis, settings, consumer="fuzz")
    assert redis.xlen(contract.INBOX) == 0
    for member in redis.zrange(contract.FETCH_DUE, 0, -1):
        assert re.fullmatch(rb"[0-9]+:[0-9]+", member), member


# Nesting past the JSON parser's recursion limit, inside a valid envelope or as the whole body.
nesting = st.tuples(st.integers(min_value=1, max_value=5000), st.sampled_from(["[", '{"a":']), st.booleans())


@settings(max_examples=30, deadline=None, suppress_health_check=HEALTH)
@given(shape=nesting)
def test_signed_deep_nesting_is_200_or_400(client, redis, shape):
    depth, opener, inside = shape
    closer = "]" if opener == "[" else "}"
    nested = (opener * depth + "1" + closer * depth).encode()
    body = b'{"object":"instagram","entry":[' + nested + b"]}" if inside else nested
    answer = client.post("/webhook", data=body, headers={"X-Hub-Signature-256": sign(body, SECRET)})
    assert answer.status_code in (200, 400)


def test_signed_body_nested_too_deep_is_400(client, redis):
    body = b"[" * 100_000 + b"]" * 100_000
    answer = client.post("/webhook", data=body, headers={"X-Hub-Signature-256": sign(body, SECRET)})
    assert (answer.status_code, answer.data) == (400, b"body nests too deeply\n")
    assert redis.xlen(contract.INBOX) == 0
