"""The console's pages and actions: thin views over ``live``, ``history`` and ``config.deadletters``."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, abort, current_app, redirect, render_template, request, session, url_for
from redis.exceptions import RedisError
from rq import Queue
from werkzeug.exceptions import HTTPException

from config import accounts as registry
from config import deadletters, stats
from config import login as login_flow
from config.contract import Jobs
from config.rq import QUEUE, SERIALIZER, presets
from config.settings import Settings
from webhook.console import auth, charts, live
from webhook.console.history import History, open_history

bp = Blueprint("console", __name__, template_folder="templates", static_folder="static", static_url_path="/static")
PUBLIC = {"console.login", "console.static"}
REFRESH_SECONDS = 5
KINDS = ("media_insights", "story_insights", "account_insights", "webhook_event")
FAILURE_KINDS = {"fetch": Jobs.FETCH_BATCH, "delivery": Jobs.DELIVER}


def _ctx() -> dict[str, Any]:
    return current_app.extensions["igrelay_console"]  # type: ignore[no-any-return]


def _settings() -> Settings:
    return _ctx()["settings"]  # type: ignore[no-any-return]


def _history() -> History | None:
    return open_history(_settings())


@bp.before_request
def guard() -> Response | None:
    """CSRF on every POST; a session for everything but the login form and the assets."""
    if request.method == "POST":
        auth.check_csrf()
    if request.endpoint in PUBLIC or auth.logged_in(_settings()):
        return None
    if request.method == "GET" and not request.path.endswith(".frag"):
        return redirect(url_for("console.login", next=request.full_path.rstrip("?")))  # type: ignore[return-value]
    abort(401)


@bp.after_request
def headers(response: Response) -> Response:
    """Nothing from elsewhere, no framing, no caching of pages that show live state."""
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    )
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "console.static":
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.errorhandler(RedisError)
def redis_down(exc: RedisError) -> tuple[str, int]:
    """Redis did not answer: say so instead of a traceback."""
    return render_template("console/error.html", code=503, message=f"Redis did not answer ({type(exc).__name__})"), 503


@bp.app_template_global()
def csrf_token() -> str:
    return auth.csrf_token()


@bp.app_template_filter("when")
def when(epoch: Any) -> str:
    """Epoch seconds (or an ISO string) as UTC time."""
    if epoch in (None, ""):
        return "—"
    if isinstance(epoch, str):
        parsed = _epoch(epoch)
        return when(parsed) if parsed is not None else epoch
    return datetime.fromtimestamp(float(epoch), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@bp.app_template_filter("ago")
def ago(epoch: Any) -> str:
    """Epoch seconds as "5 min ago"."""
    if epoch in (None, ""):
        return "never"
    seconds = time.time() - float(epoch)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.0f} {unit} ago" if seconds > 0 else f"in {-seconds / size:.0f} {unit}"
    return "just now"


# --- login ---
@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """The login form; a good password starts a new session."""
    settings, redis = _settings(), _ctx()["redis"]
    target = request.values.get("next", "")
    target = target if target.startswith("/console") and not target.startswith("//") else url_for("console.overview")
    if request.method == "GET":
        auth.csrf_token()  # the form's token lives in the (anonymous) session
        return render_template("console/login.html", next=target, error=None)
    client = request.remote_addr or "-"
    if auth.throttled(redis, client):
        page = render_template("console/login.html", next=target, error="Too many failed logins: wait a minute.")
        return Response(page, status=429, headers={"Retry-After": str(auth.FAILURE_WINDOW)})
    if not auth.password_ok(settings, request.form.get("password", "")):
        auth.count_failure(redis, client)
        return render_template("console/login.html", next=target, error="Wrong password."), 401
    auth.start_session(settings)
    return redirect(target)


@bp.route("/logout", methods=["GET", "POST"])
def logout() -> Any:
    """GET shows the button; POST ends the session."""
    if request.method == "GET":
        return render_template("console/logout.html")
    session.clear()
    return redirect(url_for("console.login"))


# --- overview ---
def _overview() -> dict[str, Any]:
    redis, settings = _ctx()["redis"], _settings()
    letters = deadletters.list_failed(redis)
    minutes = stats.per_minute(redis)
    series = [
        (name, [(float(m), float(v[i] or 0), f"{_clock(m)}: {v[i] or 0} {name}") for m, *v in minutes])
        for i, name in enumerate(("deliveries", "records"))
    ]
    return {
        "redis_up": live.redis_up(redis),
        "depths": live.depths(redis),
        "sinks": live.sinks(redis, settings, letters),
        "attention": [a for a in live.accounts(redis, settings) if a["attention"]],
        "chart": charts.line_chart("Deliveries and records per minute, last hour", series, x_label=_clock),
        "gaps": sum(1 for _m, d, _r in minutes if d is None),
    }


def _clock(minute: float) -> str:
    return datetime.fromtimestamp(minute * 60, UTC).strftime("%H:%M")


@bp.get("", strict_slashes=False)
def overview() -> str:
    return render_template("console/overview.html", refresh=REFRESH_SECONDS, **_overview())


@bp.get("/overview.frag")
def overview_fragment() -> str:
    return render_template("console/_overview.html", **_overview())


# --- accounts ---
@bp.get("/accounts")
def accounts() -> str:
    redis = _ctx()["redis"]
    settings = _settings()
    found = live.accounts(redis, settings)
    return render_template(
        "console/accounts.html",
        accounts=found,
        pauses=live.PAUSES,
        login_off=settings.login_off,
        connected=request.args.get("connected", ""),
    )


def _account_id(account_id: str) -> str:
    if not account_id.isdigit():
        abort(404)
    return account_id


@bp.post("/accounts/<account_id>/pause")
def pause(account_id: str) -> Any:
    seconds = live.PAUSES.get(request.form.get("for", ""), 0)
    if not seconds:
        abort(400, "choose how long to pause")
    registry.pause(_ctx()["redis"], _account_id(account_id), seconds)
    return redirect(url_for("console.accounts"))


@bp.post("/accounts/<account_id>/resume")
def resume(account_id: str) -> Any:
    registry.resume(_ctx()["redis"], _account_id(account_id))
    return redirect(url_for("console.accounts"))


@bp.get("/connect")
def connect() -> Any:
    """Start Meta's login flow for this session: a single-use link, followed at once."""
    settings = _settings()
    if settings.login_off:
        abort(404, settings.login_off)
    return redirect(login_flow.new_link(_ctx()["redis"], settings))


@bp.post("/accounts/<account_id>/remove")
def remove(account_id: str) -> Any:
    try:
        registry.remove(_ctx()["redis"], _settings(), _account_id(account_id))
    except registry.AccountError as exc:
        abort(409, str(exc))
    return redirect(url_for("console.accounts"))


@bp.post("/accounts/<account_id>/backfill")
def backfill(account_id: str) -> Any:
    redis, account_id = _ctx()["redis"], _account_id(account_id)
    if not registry.known(redis, _settings(), account_id):
        abort(404)
    Queue(QUEUE, connection=redis, serializer=SERIALIZER).enqueue(
        Jobs.BACKFILL, args=(account_id,), description=f"backfill {account_id}", **presets()["periodic"]
    )
    return redirect(url_for("console.accounts"))


@bp.get("/accounts/<account_id>")
def account(account_id: str) -> str:
    account_id, history = _account_id(account_id), _history()
    state = live.account(_ctx()["redis"], _settings(), account_id)
    media, days, demo = (
        ([], [], None)
        if history is None
        else (
            history.account_media(account_id),
            history.account_days(account_id),
            history.demographics(account_id),
        )
    )
    return render_template(
        "console/account.html",
        account=state,
        history=history,
        media=media,
        day_charts=_day_charts(days),
        demographics=_demographic_bars(demo),
    )


def _day_charts(days: list[dict[str, Any]]) -> list[charts.Chart]:
    names = sorted({n for d in days for n in (d.get("metrics") or {})})
    preferred = [n for n in ("reach", "views", "follower_count", "followers_count") if n in names]
    out = []
    for name in preferred + [n for n in names if n not in preferred]:
        points = [
            (_day_number(d), float(d["metrics"][name]), f"{d.get('day')}: {d['metrics'][name]:,}")
            for d in days
            if isinstance((d.get("metrics") or {}).get(name), (int, float))
        ]
        out.append(charts.line_chart(name, [(name, points)], x_label=_day_label))
    return out


def _day_number(record: dict[str, Any]) -> float:
    day = str(record.get("day") or record["captured_at"][:10])
    return datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() / 86400


def _day_label(day: float) -> str:
    return datetime.fromtimestamp(day * 86400, UTC).strftime("%Y-%m-%d")


def _demographic_bars(record: dict[str, Any] | None) -> list[tuple[str, list[charts.Bar], int]]:
    """One bar chart per (metric, breakdown) of the latest demographics snapshot, largest values first."""
    if not record:
        return []
    out = []
    for metric, by in sorted((record.get("breakdowns") or {}).items()):
        for breakdown, values in sorted(by.items()):
            items = [(str(k), float(v)) for k, v in values.items() if isinstance(v, (int, float))]
            title = f"{metric.replace('_', ' ')} by {breakdown} ({record.get('timeframe')})"
            out.append(charts.bar_chart(title, items))
    return out


# --- media ---
@bp.get("/media/<media_id>")
def media(media_id: str) -> str:
    if not media_id.isdigit():
        abort(404)
    history = _history()
    found = history.media(media_id) if history is not None else []
    insights = [r for r in found if r.get("kind") in ("media_insights", "story_insights")]
    events = [r for r in found if r.get("kind") == "webhook_event"]
    latest = insights[-1] if insights else None
    return render_template(
        "console/media.html",
        media_id=media_id,
        history=history,
        latest=latest,
        insights=insights,
        events=list(reversed(events)),
        metric_charts=_metric_charts(insights),
        refused=_refused(insights),
    )


def _metric_charts(insights: list[dict[str, Any]]) -> list[charts.Chart]:
    """Each metric over hours since publication, one point per stored record."""
    if not insights:
        return []
    start = _epoch(insights[0].get("media_timestamp")) or _epoch(insights[0]["captured_at"]) or 0.0
    names = sorted({n for r in insights for n in (r.get("metrics") or {})})
    out = []
    for name in names:
        points = []
        for r in insights:
            value = (r.get("metrics") or {}).get(name)
            if isinstance(value, (int, float)):
                hours = ((_epoch(r["captured_at"]) or start) - start) / 3600
                points.append((hours, float(value), f"{r['captured_at']}: {value:,} ({r.get('trigger')})"))
        out.append(charts.line_chart(name, [(name, points)], x_label=_hours))
    return out


def _hours(hours: float) -> str:
    return f"{hours / 24:.1f} d" if hours >= 48 else f"{hours:.1f} h"


def _epoch(iso: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(iso).replace("Z", "+00:00")).timestamp() if iso else None
    except ValueError:
        return None


def _refused(insights: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(metric, Meta's reason, last seen) for every metric a record marked unavailable."""
    out: dict[str, tuple[str, str, str]] = {}
    for r in insights:
        for name, reason in (r.get("unavailable") or {}).items():
            out[name] = (name, str(reason), str(r["captured_at"]))
    return sorted(out.values())


# --- activity ---
def _activity() -> dict[str, Any]:
    args = {k: request.args.get(k, "").strip() for k in ("account", "kind", "field")}
    if args["account"] and not args["account"].isdigit():
        abort(400, "account: digits only")
    history = _history()
    rows = history.activity(args["account"], args["kind"], args["field"]) if history is not None else []
    return {"history": history, "rows": rows, "filters": args, "query": urlencode(args)}


@bp.get("/activity")
def activity() -> str:
    found = registry.ids(_ctx()["redis"], _settings())
    return render_template("console/activity.html", refresh=REFRESH_SECONDS, kinds=KINDS, accounts=found, **_activity())


@bp.get("/activity.frag")
def activity_fragment() -> str:
    return render_template("console/_activity.html", **_activity())


# --- sinks ---
@bp.get("/sinks")
def sinks() -> str:
    return render_template("console/sinks.html", sinks=live.sinks(_ctx()["redis"], _settings()))


@bp.post("/sinks/<name>/enable")
def enable_sink(name: str) -> Any:
    if name not in {s["name"] for s in live.sinks(_ctx()["redis"], _settings(), [])}:
        abort(404)
    live.enable_sink(_ctx()["redis"], name)
    return redirect(request.form.get("back") or url_for("console.sinks"))


# --- failures ---
def _filters() -> dict[str, str]:
    values = {k: request.values.get(k, "").strip() for k in ("kind", "sink", "q")}
    if values["kind"] not in ("", "other", *FAILURE_KINDS):
        abort(400, "kind: fetch, delivery or other")
    return values


def _matching(filters: dict[str, str]) -> list[dict[str, Any]]:
    items = deadletters.list_failed(_ctx()["redis"])
    kind, sink, q = filters["kind"], filters["sink"], filters["q"].lower()
    if kind:
        items = [
            i
            for i in items
            if i["function"] == FAILURE_KINDS.get(kind)
            or (kind == "other" and i["function"] not in FAILURE_KINDS.values())
        ]
    if sink:
        items = [i for i in items if i["sink"] == sink]
    if q:
        items = [i for i in items if q in f"{i['exception']} {i['message']} {i['id']}".lower()]
    return list(reversed(items))  # newest first


@bp.get("/failures")
def failures() -> str:
    filters = _filters()
    items = _matching(filters)
    gone = [s for s in live.sinks(_ctx()["redis"], _settings(), []) if s["state"] == "disabled"]
    return render_template(
        "console/failures.html",
        items=items,
        filters=filters,
        query=urlencode(filters),
        gone=gone,
        replayed=request.args.get("replayed"),
    )


@bp.get("/failures/replay")
def replay_confirm() -> str:
    filters = _filters()
    return render_template("console/replay.html", count=len(_matching(filters)), filters=filters)


@bp.post("/failures/replay")
def replay() -> Any:
    """Replay one dead letter (``job_id``) or every one matching the filters."""
    redis, job_id = _ctx()["redis"], request.form.get("job_id", "")
    ids = [job_id] if job_id else [i["id"] for i in _matching(_filters())]
    n = deadletters.replay(redis, job_ids=ids, settings=_settings()) if ids else 0
    return redirect(url_for("console.failures", replayed=n))


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException) -> Any:
    """Console errors as a small page."""
    return render_template("console/error.html", code=exc.code, message=exc.description), exc.code or 500
