"""workers.graph: request building, parsing and error classification, from recorded Graph payloads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workers import graph

SAMPLES = Path(__file__).parent / "samples" / "graph"


def sample(name: str) -> dict:
    return json.loads((SAMPLES / f"{name}.json").read_text())


def test_media_params_expand_metadata_and_insights_in_one_field_list() -> None:
    params = graph.media_params(["views", "reach"])
    assert params == {"fields": "id,media_type,media_product_type,permalink,timestamp,insights.metric(views,reach)"}
    assert "insights" not in graph.media_params([])["fields"]


def test_parse_media_reads_values_and_reports_missing_metrics_as_no_data() -> None:
    node, metrics, unavailable = graph.parse_media(sample("media_reels"), ["views", "reach", "saved", "likes"])
    assert node["media_product_type"] == "REELS" and "insights" not in node
    assert metrics == {"views": 4569, "reach": 3100, "saved": 0}
    assert unavailable == {"likes": "no_data"}


def test_float_metrics_are_kept_and_unrequested_ones_ignored() -> None:
    _node, metrics, _ = graph.parse_media(sample("media_reels"), ["reels_skip_rate"])
    assert metrics == {"reels_skip_rate": 31.25}


def test_missing_insights_means_unavailable_never_zero() -> None:
    node, metrics, unavailable = graph.parse_media(sample("media_no_insights"), ["views", "reach"])
    assert metrics == {} and unavailable == {"views": "no_data", "reach": "no_data"}
    assert node["id"] == "18000000000000005"


def test_total_value_is_the_fallback() -> None:
    metrics, _ = graph.parse_insights(sample("story_navigation_breakdown")["data"], ["navigation"])
    assert metrics == {"navigation": 25}
    metrics, unavailable = graph.parse_insights(sample("account_insights")["data"], ["reach", "likes", "saves"])
    assert metrics == {"reach": 1234, "likes": 56} and unavailable == {"saves": "no_data"}


def test_parse_insights_ignores_junk() -> None:
    data = [{"name": "reach", "values": [{"value": True}]}, "x", {"name": "views", "values": []}]
    assert graph.parse_insights(data, ["reach", "views"]) == ({}, {"reach": "no_data", "views": "no_data"})
    assert graph.parse_insights(None, ["reach"]) == ({}, {"reach": "no_data"})


def test_listing_gives_nodes_and_after_cursor_only_with_a_next_page() -> None:
    body = sample("media_listing")
    nodes, after = graph.parse_listing(body)
    assert [n["id"] for n in nodes] == ["18000000000000009", "18000000000000008"] and after == "QVFIUmx2"
    del body["paging"]["next"]
    assert graph.parse_listing(body)[1] is None
    assert graph.listing_params(after="X")["after"] == "X"


def test_account_params_refuse_windows_over_30_days() -> None:
    params = graph.account_params(["reach"], 0, 86400)
    assert params["period"] == "day" and params["metric_type"] == "total_value"
    with pytest.raises(ValueError):
        graph.account_params(["reach"], 0, 31 * 86400)


@pytest.mark.parametrize(
    ("name", "status", "cls", "attr", "value"),
    [
        ("error_gone", 400, graph.TerminalError, "reason", "gone"),
        ("error_pre_conversion", 400, graph.TerminalError, "reason", "pre_conversion"),
        ("error_not_enough_viewers", 400, graph.TooFewViewers, "reason", "not_enough_viewers"),
        ("error_permission", 403, graph.TerminalError, "reason", "no_permission"),
        ("error_expired_token", 400, graph.AuthError, "subcode", 463),
        ("error_buc_throttle", 400, graph.ThrottledError, "code", 80002),
        ("error_app_throttle", 403, graph.ThrottledError, "code", 4),
        ("error_service", 500, graph.TransientError, "code", 2),
        ("error_unknown", 500, graph.TransientError, "code", 1),
        ("error_window", 400, graph.GraphError, "code", 100),
    ],
)
def test_classify(name: str, status: int, cls: type, attr: str, value: object) -> None:
    exc = graph.classify(status, sample(name), {})
    assert type(exc) is cls
    assert getattr(exc, attr) == value


def test_classify_names_the_rejected_metric() -> None:
    requested = ["views", "reach", "impressions", "saved"]
    exc = graph.classify(400, sample("error_must_be_one_of"), {}, requested)
    assert isinstance(exc, graph.MetricRejected) and exc.metrics == ("impressions",)
    for name in ("error_impressions_v22", "error_not_supported_product"):
        exc = graph.classify(400, sample(name), {}, requested)
        assert isinstance(exc, graph.MetricRejected) and exc.metrics == ("impressions",)


@pytest.mark.parametrize(
    ("message", "refused"),
    [
        ("(#100) The Media Insights API does not support the saved metric for this media product type", ("saved",)),
        (
            "(#100) The Media Insights API does not support the saved, shares metric for this media product type",
            ("saved", "shares"),
        ),
        ("(#100) The Media Insights API does not support the impressions, replies metric", ("replies",)),
        ("The metric shares is not supported for this media type", ("shares",)),
        ("(#100) the views metric is no longer supported for the queried media", ("views",)),
        ("(#100) The views metric is only available for media shared to Facebook", ("views",)),
        ("(#100) metric[1] must be one of the following values: views, reach", ("saved", "shares", "replies")),
        ("(#100) Invalid parameter", ()),
    ],
)
def test_every_refusal_wording_names_its_metrics(message: str, refused: tuple[str, ...]) -> None:
    requested = ["views", "saved", "shares", "replies"]
    exc = graph.classify(400, {"error": {"code": 100, "message": message}}, {}, requested)
    assert isinstance(exc, graph.MetricRejected) and exc.metrics == refused


def test_rejected_metrics_fall_back_to_the_index() -> None:
    message = "(#100) metric[1] must be one of the following values: views, reach, saved"
    assert graph.rejected_metrics(message, ["views", "reach"]) == ("reach",)
    assert graph.rejected_metrics("something else", ["views"]) == ()


def test_code_100_without_metrics_asked_is_a_plain_error() -> None:
    exc = graph.classify(400, {"error": {"code": 100, "message": "(#100) Invalid parameter"}}, {})
    assert type(exc) is graph.GraphError


@pytest.mark.parametrize(("code", "scope"), [(4, "app"), (17, "user"), (32, "account"), (80002, "account")])
def test_throttles_say_whom_they_apply_to(code: int, scope: str) -> None:
    exc = graph.classify(400, {"error": {"code": code, "message": "limit"}}, {})
    assert isinstance(exc, graph.ThrottledError) and exc.scope == scope


def test_usage_headers_give_percentages_and_a_pace() -> None:
    buc = {"17841400000000001": [{"type": "instagram", "call_count": 85, "total_time": 20}]}
    headers = {"X-Business-Use-Case-Usage": json.dumps(buc), "X-App-Usage": '{"call_count": 12, "total_time": 30}'}
    assert graph.usage_percent(headers) == (30.0, 85.0)
    assert graph.usage_percent({"X-App-Usage": "junk"}) == (0.0, 0.0)
    assert graph.pace_seconds(79) == 0 and graph.pace_seconds(80) == 60 and graph.pace_seconds(100) == 900


def test_throttle_reads_minutes_from_usage_headers() -> None:
    buc = {"17841400000000001": [{"type": "instagram", "call_count": 100, "estimated_time_to_regain_access": 7}]}
    app = {"call_count": 100, "estimated_time_to_regain_access": 3}
    headers = {"X-Business-Use-Case-Usage": json.dumps(buc), "X-App-Usage": json.dumps(app)}
    exc = graph.classify(400, sample("error_buc_throttle"), headers)
    assert isinstance(exc, graph.ThrottledError) and exc.retry_after == 7 * 60
    assert graph.classify(400, sample("error_buc_throttle"), {}).retry_after == graph.DEFAULT_THROTTLE_SECONDS
    assert graph.regain_seconds({"X-App-Usage": "not json"}) == 0


def test_bodies_without_a_graph_error() -> None:
    assert isinstance(graph.classify(502, None, {}), graph.TransientError)
    assert isinstance(graph.classify(429, "x", {}), graph.TransientError)
    assert type(graph.classify(404, {}, {})) is graph.GraphError
    assert isinstance(graph.classify(503, {"error": {"message": "x"}}, {}), graph.TransientError)
