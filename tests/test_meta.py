"""webhook.meta, sans-I/O: handshake, signature and envelope with bytes alone."""

import hashlib
import hmac
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from igrelay.payloads import sign
from webhook import meta

SAMPLES = Path(__file__).parent / "samples" / "meta"
SECRETS = ["meta-app-secret", "instagram-app-secret"]


def test_handshake_echoes_challenge_for_right_token():
    args = {"hub.mode": "subscribe", "hub.verify_token": "tok", "hub.challenge": "1158201444"}
    assert meta.handshake(args, "tok") == "1158201444"


@pytest.mark.parametrize(
    "args,status",
    [
        ({"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"}, 403),
        ({"hub.mode": "unsubscribe", "hub.verify_token": "tok", "hub.challenge": "1"}, 403),
        ({"hub.verify_token": "tok", "hub.challenge": "1"}, 400),
        ({"hub.mode": "subscribe", "hub.challenge": "1"}, 400),
        ({"hub.mode": "subscribe", "hub.verify_token": "tok"}, 400),
    ],
)
def test_handshake_refusals(args, status):
    with pytest.raises(meta.HandshakeError) as info:
        meta.handshake(args, "tok")
    assert info.value.status == status


@pytest.mark.parametrize("sample", sorted(p.name for p in SAMPLES.glob("*.json")))
def test_every_sample_verifies_with_either_secret(sample):
    body = (SAMPLES / sample).read_bytes()
    assert meta.verify_signature(body, [sign(body, SECRETS[0])], SECRETS) == 0
    assert meta.verify_signature(body, [sign(body, SECRETS[1])], SECRETS) == 1


def test_raw_utf8_body_verifies_against_escaped_signature():
    """A proxy that re-encoded Meta's escaped body to UTF-8 must not break verification."""
    escaped = (SAMPLES / "non_ascii_escaped.json").read_bytes()
    raw = escaped.decode("unicode_escape").encode("utf-16", "surrogatepass").decode("utf-16").encode()
    assert not raw.isascii()
    assert meta.verify_signature(raw, [sign(escaped, SECRETS[0])], SECRETS) == 0


def _escape_per_character(text: str) -> bytes:
    """The escaped form Meta signs, spelled out one character at a time (the reference)."""
    out = []
    for ch in text:
        if ord(ch) < 0x80:
            out.append(ch)
        else:
            units = ch.encode("utf-16-be")
            out += [f"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2)]
    return "".join(out).encode("ascii")


# JSON text's awkward pieces: quotes, escapes that look like the ones added, raw whitespace, DEL, each plane.
_PIECES = ["a", "x", "u", '"', "\\", '\\"', "\\\\", "\\n", "\\u00e9", "\\u007f", "\\x", "\n", "\t", "\r", " ", "\x7f"]
_PIECES += ["\x80", "é", "ÿ", "Ā", "€", "\uffff", "😀", "\U00010000", "\U0010ffff"]


@given(st.lists(st.sampled_from(_PIECES), max_size=40))
def test_escaped_form_matches_meta_per_character(pieces):
    text = "".join(pieces)
    body = text.encode()
    escaped = _escape_per_character(text)
    assert meta.verify_signature(body, [sign(escaped, SECRETS[1])], SECRETS) == 1


def test_body_that_cannot_be_json_is_not_escaped():
    """A raw control character other than whitespace is never in JSON text: no escaped form to try."""
    body = '{"a":"é\x01"}'.encode()
    with pytest.raises(meta.SignatureError):
        meta.verify_signature(body, [sign(_escape_per_character(body.decode()), SECRETS[0])], SECRETS)


@pytest.mark.parametrize(
    "text", ["é" * 50_000, "😀" * 25_000, "éa" * 30_000, '"é' * 30_000, "\\é" * 30_000, '\\"\n\x7fé' * 20_000]
)
def test_forged_non_ascii_body_costs_no_python_loop(text):
    """Refusing a forged non-ASCII body runs a bounded number of C calls, not one per character."""
    import sys

    calls = [0]

    def count(_frame, event, _arg):  # type: ignore[no-untyped-def]
        calls[0] += event == "c_call"

    sys.setprofile(count)
    try:
        with pytest.raises(meta.SignatureError):
            meta.verify_signature(text.encode(), ["sha256=" + "0" * 64], SECRETS)
    finally:
        sys.setprofile(None)
    assert calls[0] < 100


def _header_variants(body: bytes) -> dict[str, list[str]]:
    good = sign(body, SECRETS[0])
    digest = good.removeprefix("sha256=")
    sha1 = hmac.new(SECRETS[0].encode(), body, hashlib.sha1).hexdigest()
    return {
        "missing": [],
        "empty": [""],
        "wrong secret": [sign(body, "not-our-secret")],
        "sha1": [f"sha1={sha1}"],
        "upper-case hex": ["sha256=" + digest.upper()],
        "odd length": ["sha256=" + digest[:-1]],
        "non-hex": ["sha256=" + "z" * 64],
        "no prefix": [digest],
        "duplicated": [good, good],
        "huge": ["sha256=" + "a" * 10_000],
        "body changed": [sign(body + b" ", SECRETS[0])],
    }


@pytest.mark.parametrize("case", list(_header_variants(b"{}")))
def test_signature_matrix_rejects(case):
    body = (SAMPLES / "comments_instagram_login.json").read_bytes()
    with pytest.raises(meta.SignatureError):
        meta.verify_signature(body, _header_variants(body)[case], SECRETS)


def test_one_changed_byte_fails():
    body = bytearray((SAMPLES / "comments_instagram_login.json").read_bytes())
    header = sign(bytes(body), SECRETS[0])
    body[40] ^= 1
    with pytest.raises(meta.SignatureError):
        meta.verify_signature(bytes(body), [header], SECRETS)


def test_no_secrets_configured_fails_closed():
    with pytest.raises(meta.SignatureError):
        meta.verify_signature(b"{}", [sign(b"{}", "")], [])


def test_compare_is_constant_time():
    import inspect

    assert "compare_digest" in inspect.getsource(meta.verify_signature)
    assert "compare_digest" in inspect.getsource(meta.handshake)


@pytest.mark.parametrize("sample", sorted(p.name for p in SAMPLES.glob("*.json")))
def test_samples_are_envelopes(sample):
    envelope = meta.parse_envelope((SAMPLES / sample).read_bytes())
    assert envelope.entries >= 1 and "instagram" in envelope.objects


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b"[1]",
        b"42",
        b'"s"',
        b"{}",
        b'{"object":"instagram"}',
        b'{"object":1,"entry":[]}',
        b'{"object":"instagram","entry":{}}',
        b'[{"object":"instagram","entry":[]}, 3]',
    ],
)
def test_malformed_bodies(body):
    with pytest.raises(meta.PayloadError):
        meta.parse_envelope(body)
