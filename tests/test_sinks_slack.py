"""The Slack sink against a fake Slack on loopback: readable messages, never posted twice."""

from __future__ import annotations

import json
import time

import pytest
from conftest import make_settings

from workers import delivery
from workers import records as R
from workers.changes import Change
from workers.sinks import PermanentSinkError, SinkError, SinkGone, load
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
    options = {"endpoint": f"{receiver.url}/services/x", "allow_private": True, **options}
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in options.items())
    config.write_text(f'[sinks.team]\nurl = "{HOOK}"\n{extra}')
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
    assert [b["blocks"][0]["text"]["text"] for b in bodies] == [message(media()), message(comment())]
    assert receiver.requests[0]["path"] == "/services/x"


def test_comment_text_is_plain_and_nothing_unfurls(tmp_path, receiver, redis) -> None:
    hostile = comment()
    hostile["event"]["text"] = "*bold* _it_ ~s~ `x` ```code``` > quote https://evil.example/x <!channel> :tada:"
    hostile["event"]["from"]["username"] = "_ana_"
    delivery.deliver(redis, slack_settings(tmp_path, receiver), "team", [hostile, media()])
    posted, insights = (json.loads(b) for b in receiver.ok_bodies())
    for body in (posted, insights):
        assert body["unfurl_links"] is False and body["unfurl_media"] is False and body["mrkdwn"] is False
    texts = [block["text"] for block in posted["blocks"]]
    assert texts and all(t["type"] == "plain_text" and t["emoji"] is False for t in texts)
    assert "*bold*" in texts[0]["text"] and "&lt;!channel&gt;" in texts[0]["text"] and "@_ana_" in texts[0]["text"]
    assert insights["blocks"][0]["text"]["type"] == "mrkdwn"  # igrelay's own links and bold figures


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


@pytest.mark.parametrize("allow_private", [False, True])
def test_a_name_that_does_not_resolve_is_retried_not_dropped(tmp_path, receiver, redis, allow_private) -> None:
    unresolvable = slack_settings(tmp_path, receiver, endpoint="https://hooks.invalid/x", allow_private=allow_private)
    started = time.monotonic()
    with pytest.raises(SinkError, match="does not resolve") as info:
        delivery.deliver(redis, unresolvable, "team", [comment()])
    assert not isinstance(info.value, PermanentSinkError) and info.value.done == ()
    assert time.monotonic() - started < 5  # .invalid never resolves (RFC 6761): no network needed
    delivery.deliver(redis, slack_settings(tmp_path, receiver), "team", [comment()])  # the retry, DNS fixed
    assert len(receiver.ok_bodies()) == 1  # the claim was released, so the record was posted
