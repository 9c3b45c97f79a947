"""workers.changes, sans-I/O: every field and documented oddity, and dedupe keys."""

import json
from pathlib import Path

import pytest

from workers.changes import MalformedDelivery, iter_changes, normalize_time

SAMPLES = Path(__file__).parent / "samples" / "meta"


def changes(name):
    return list(iter_changes((SAMPLES / name).read_bytes()))


def test_instagram_login_comment():
    (c,) = changes("comments_instagram_login.json")
    assert (c.object, c.account_id, c.field, c.media_id, c.known) == (
        "instagram",
        "17841400000000001",
        "comments",
        "18111111111111111",
        True,
    )
    assert c.key == "instagram|17841400000000001|comments|18000000000000001"
    assert c.time == 1730000000


def test_comment_id_is_accepted_for_id():
    (c,) = changes("comments_facebook_login_comment_id.json")
    assert c.key.endswith("|comments|18000000000000002")


def test_mentions_story_insights_live_comments():
    (m,) = changes("mentions.json")
    assert m.field == "mentions" and m.media_id == "17918195224117851"
    (s,) = changes("story_insights.json")
    assert s.field == "story_insights" and s.media_id == "18023345989012587"
    (live,) = changes("live_comments.json")
    assert live.field == "live_comments" and live.media_id == "18222222222222222"


def test_messaging_events_and_millisecond_time():
    message, reaction, echo = changes("messages_ms_time.json")
    assert [message.field, reaction.field, echo.field] == ["messages", "message_reactions", "message_echoes"]
    assert message.time == pytest.approx(1569262485.349)
    assert message.key != echo.key and message.key != reaction.key


def test_array_wrapped_and_missing_changes():
    assert [c.field for c in changes("array_wrapped.json")] == ["comments"]
    assert [c.key.rsplit("|", 1)[1] for c in changes("missing_changes.json")] == ["18000000000000005"]


def test_unknown_fields_and_objects_are_not_known():
    out = changes("unknown_field_and_object.json")
    assert [(c.object, c.field, c.known) for c in out] == [
        ("instagram", "some_future_field", False),
        ("instagram", "comments", True),
        ("page", "feed", False),
    ]


def test_same_change_in_another_batch_has_the_same_key():
    one = json.loads((SAMPLES / "comments_instagram_login.json").read_text())
    rebatched = {
        "object": "instagram",
        "entry": [
            {
                "id": "17841400000000001",
                "time": 1730009999,
                "changes": [{"field": "comments", "value": {"id": "other"}}, one["entry"][0]["changes"][0]],
            }
        ],
    }
    key = changes("comments_instagram_login.json")[0].key
    assert key in [c.key for c in iter_changes(json.dumps(rebatched))]


def test_story_insights_key_changes_with_values():
    body = json.loads((SAMPLES / "story_insights.json").read_text())
    first = list(iter_changes(json.dumps(body)))[0].key
    body["entry"][0]["changes"][0]["value"]["reach"] = 18
    assert list(iter_changes(json.dumps(body)))[0].key != first


@pytest.mark.parametrize(
    "raw,seconds", [(1730000000, 1730000000), (1730000000123, 1730000000.123), (None, None), ("x", None)]
)
def test_normalize_time(raw, seconds):
    assert normalize_time(raw) == (pytest.approx(seconds) if seconds else None)


def test_thousand_change_batch():
    entry = {
        "id": "1",
        "time": 1,
        "changes": [{"field": "comments", "value": {"id": str(i), "media": {"id": str(i % 7)}}} for i in range(1000)],
    }
    out = list(iter_changes(json.dumps({"object": "instagram", "entry": [entry]})))
    assert len(out) == 1000 and len({c.key for c in out}) == 1000


@pytest.mark.parametrize("body", [b"nope", b"42", b'{"object":"instagram"}'])
def test_malformed(body):
    with pytest.raises(MalformedDelivery):
        list(iter_changes(body))


def test_problem_refuses_ids_that_are_not_digits_and_times_that_are_no_instant():
    from workers.changes import Change, problem

    def one(account="17841400000000001", media="18000000000000001", when=1796110912.0):  # type: ignore[no-untyped-def]
        return problem(Change("instagram", account, "comments", {"media": {"id": media}}, when, "k"))

    assert one() is None and one(account="0") is None and one(when=None) is None
    for account in ("", "../me", "1:2", " 1", "١٢٣"):
        assert one(account=account) == "account id is not numeric"
    assert one(media="../../refresh_access_token") == "media id is not numeric"
    for when in (float("nan"), float("inf"), -1.0, 1e17):
        assert one(when=when) == "time out of range"
    assert normalize_time("1e20") == 1e17 and normalize_time(True) is None and normalize_time(10**400) is None
