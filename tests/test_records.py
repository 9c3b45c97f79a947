"""workers.records: contract shape, stable ids, -1 as "fewer than 5"."""

from pathlib import Path

from workers import records
from workers.changes import iter_changes

SAMPLES = Path(__file__).parent / "samples" / "meta"


def change(name):
    return next(iter_changes((SAMPLES / name).read_bytes()))


def test_webhook_event_shape_and_stable_id():
    c = change("comments_instagram_login.json")
    a = records.webhook_event(c, "2026-01-01T00:00:00Z")
    b = records.webhook_event(c)
    assert a["id"] == b["id"] and a["kind"] == "webhook_event"
    assert a["event"] == {
        "field": "comments",
        "time": "2024-10-27T03:33:20Z",
        "comment_id": "18000000000000001",
        "parent_id": "18000000000000000",
        "media_id": "18111111111111111",
        "media_product_type": "REELS",
        "text": "Love this!",
        "from": {"id": "1234567890", "username": "some_user"},
    }
    assert a["account_id"] == "17841400000000001" and a["trigger"] == "comments"


def test_message_event():
    c = change("messages_ms_time.json")
    event = records.webhook_event(c)["event"]
    assert event["message_id"] == "aWdfZAG1mid0001" and event["text"] == "hi"
    assert event["from"] == {"id": "9876543210"}


def test_story_insights_from_payload():
    rec = records.story_insights_from_webhook(change("story_insights.json"))
    assert rec["kind"] == "story_insights" and rec["media_id"] == "18023345989012587"
    assert rec["metrics"] == {"reach": 17, "views": 28}  # the API's names: impressions is views
    assert rec["breakdowns"] == {"navigation": {"story_navigation_action_type": {"tap_forward": 12, "tap_exit": 1}}}
    assert rec["unavailable"] == {"replies": "fewer_than_5", "navigation.tap_back": "fewer_than_5"}
    assert rec["webhook_metrics"]["taps_back"] == -1


def test_media_insights_id_depends_on_content_not_time():
    node = {
        "id": "1",
        "media_type": "IMAGE",
        "media_product_type": "FEED",
        "permalink": "https://p",
        "timestamp": "2026-11-20T10:00:00+0000",
    }
    a = records.media_insights("9", node, {"reach": 5}, {}, "poll", "2026-01-01T00:00:00Z")
    b = records.media_insights("9", node, {"reach": 5}, {}, "schedule")
    c = records.media_insights("9", node, {"reach": 6}, {}, "poll")
    assert a["id"] == b["id"] != c["id"]
    assert a["media_timestamp"] == "2026-11-20T10:00:00Z" and a["kind"] == "media_insights"
    assert records.media_insights("9", {**node, "media_product_type": "STORY"}, {}, {}, "poll")["kind"] == (
        "story_insights"
    )
