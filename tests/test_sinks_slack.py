"""The Slack sink against a fake Slack on loopback: readable messages, never posted twice."""

from __future__ import annotations

import json

import pytest
from conftest import make_settings

from workers import delivery
from workers import records as R
from workers.changes import Change
from workers.sinks import PermanentSinkError, SinkGone, load
from workers.sinks.slack import message

HOOK = "slack://hooks.slack.com/services/T000/B000/SECRETHOOKPATH"


def media() -> dict:
    node = {"id": "901", "media_type": "VIDEO", "media_product_type": "REELS", "permalink": "https://ig/p/abc"}
    return R.media_insights("17841", node, {"reach": 1234, "likes": 56}, {}, "comments")


def comment(i: int = 0) -> dict:
    value = {
        "id": f"c{i}",
        "text": "Love <this> & that" + "!" * i,
        "from": {"id": "7", "username": "ana"},
        "media": {"id": "901"},
    }
    return R.webhook_event(Change("instagram", "17841", "comments", value, 1764000000, f"k{i}"))


def slack_settings(tmp_path, receiver, **options):  # type: ignore[no-untyped-def]
    config = tmp_path / "igrelay.toml"
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in options.items())
    config.write_text(
        f'[sinks.team]\nurl = "{HOOK}"\nendpoint = "{receiver.url}/services/x"\nallow_private = true\n{extra}'
    )
    return make_settings(tmp_path, IGRELAY_SINKS=HOOK, IGRELAY_CONFIG=str(config))


def test_messages_are_readable() -> None:
    text = message(media())
    assert "<https://ig/p/abc|media 901>" in text and "reach *1,234*" in text and "REELS" in text
    text = message(comment())
    assert text.startswith("New comment from @ana on media 901") and "Love &lt;this&gt; &amp; that" in text
    assert "2026-11-20" in message(R.account_insights("1", "2026-11-20", {"reach": 3}, {}, "schedule"))
    audience = R.account_insights(
        "1",
        "2026-11-20",
        {},
        {},
        "schedule",
        breakdowns={"follower_demographics": {"age": {"18-24": 3}}},
        timeframe="this_week",
    )
    assert message(audience) == "Account 1 audience (this_week): follower_demographics"


def test_posts_text_to_the_endpoint(tmp_path, receiver, redis) -> None:
    settings = slack_settings(tmp_path, receiver)
    delivery.deliver(redis, settings, "team", [media(), comment()])
    bodies = [json.loads(b) for b in receiver.ok_bodies()]
    assert [set(b) for b in bodies] == [{"text"}, {"text"}] and receiver.requests[0]["path"] == "/services/x"


def test_a_retried_batch_never_posts_twice(tmp_path, receiver, redis) -> None:
    settings = slack_settings(tmp_path, receiver)
    records = [comment(i) for i in range(4)]
    receiver.script = [(200, {}), (200, {}), (500, {})]
    with pytest.raises(Exception, match="500"):
        delivery.deliver(redis, settings, "team", records)
    delivery.deliver(redis, settings, "team", records)  # the retry
    delivery.deliver(redis, settings, "team", records)  # and a duplicate job
    texts = [r["body"] for r in receiver.requests if r["status"] == 200]
    assert len(texts) == 4 and len(set(texts)) == 4 and len(receiver.requests) == 5


def test_lost_answer_is_not_posted_again(tmp_path, receiver, redis) -> None:
    settings = slack_settings(tmp_path, receiver, read_timeout=0.2)
    receiver.delay = 0.5
    with pytest.raises(Exception, match="ReadTimeout"):
        delivery.deliver(redis, settings, "team", [comment()])
    receiver.delay = 0
    delivery.deliver(redis, settings, "team", [comment()])
    assert len(receiver.requests) == 1  # at most once: the post may have happened


def test_archived_channel_disables_and_bad_payload_is_permanent(tmp_path, receiver) -> None:
    settings = slack_settings(tmp_path, receiver)
    sink = load(HOOK, settings.section("sinks")["team"], settings)
    receiver.script = [(400, {}), (404, {})]
    with pytest.raises(PermanentSinkError) as info:
        sink.send([comment()])
    with pytest.raises(SinkGone):
        sink.send([comment(2)])
    sink.close()
    assert "SECRETHOOKPATH" not in str(info.value)
