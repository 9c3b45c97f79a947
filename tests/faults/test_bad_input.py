"""Fault 7: hostile input at the webhook: 10,000 property-based requests through the real app."""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config import contract
from igrelay import payloads
from tests.conftest import OTHER_SECRET, SECRET

EXAMPLES = 10_000
HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]


envelopes = st.builds(
    lambda field, n: payloads.encode(payloads.delivery(field, "17841400000000001", "18100000000000001", n)),
    st.sampled_from(payloads.FIELDS),
    st.integers(1, 3),
)


@st.composite
def deliveries(draw) -> tuple[bytes, list[str], bool]:  # type: ignore[no-untyped-def]
    """(body, X-Hub-Signature-256 header values, validly signed?) across the signature matrix."""
    body = draw(
        st.one_of(
            st.binary(max_size=1500),
            st.builds(lambda s: s.encode("utf-8", "surrogatepass"), st.text(max_size=300)),
            envelopes,
        )
    )
    secret = draw(st.sampled_from([SECRET, OTHER_SECRET]))
    good = payloads.sign(body, secret)
    digest = good.removeprefix("sha256=")
    kind = draw(
        st.sampled_from(
            [
                "valid",
                "valid-other-body",
                "wrong-secret",
                "one-char-changed",
                "missing",
                "empty",
                "sha1",
                "upper-case",
                "odd-length",
                "non-hex",
                "duplicated",
                "huge",
                "random",
                "whitespace",
            ]
        )
    )
    flipped = digest[:-1] + ("0" if digest[-1] != "0" else "1")
    headers = {
        "valid": [good],
        "valid-other-body": [payloads.sign(body + b" ", secret)],
        "wrong-secret": [payloads.sign(body, "not-" + secret)],
        "one-char-changed": [f"sha256={flipped}"],
        "missing": [],
        "empty": [""],
        "sha1": ["sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()],
        "upper-case": ["sha256=" + digest.upper()] if digest.upper() != digest else [f"SHA256={digest}"],
        "odd-length": [good[:-1]],
        "non-hex": [f"sha256={digest[:-2]}zz"],
        "duplicated": [good, good],
        "huge": ["sha256=" + "a" * 10_000],
        "random": [draw(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=120))],
        "whitespace": [f" {good} "],
    }[kind]
    return body, headers, kind in ("valid", "whitespace")


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=HEALTH, database=None)
@given(case=deliveries())
def test_ten_thousand_hostile_requests_never_5xx_and_store_nothing_unsigned(client, redis, case):
    """10,000 requests (random bodies and envelopes x 14 signature variants: wrong secret, one char changed,
    missing, sha1=, upper-case, odd length, non-hex, duplicated, 10 KB, random): 0 answers 5xx, 0 unsigned
    bodies stored; a stored body is always a validly signed one."""
    body, values, signed = case
    before = redis.xlen(contract.INBOX)
    answer = client.post("/webhook", data=body, headers=[("X-Hub-Signature-256", v) for v in values])
    assert answer.status_code in (200, 400, 401, 413), answer.status_code
    stored = redis.xlen(contract.INBOX) - before
    if not signed:
        assert answer.status_code in (400, 401) and stored == 0
    else:
        assert stored == (answer.status_code == 200)
