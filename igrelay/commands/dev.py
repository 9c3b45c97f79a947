"""``igrelay dev``: web, worker and scheduler on this machine, with Redis and a sandbox Graph API when needed."""

from __future__ import annotations

import argparse
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests
from redis.exceptions import RedisError

from config import redis_conn
from config.settings import Settings, redact_url
from igrelay.commands.common import CommandError
from igrelay.commands.simulate import DEMO_ACCOUNT, DEMO_MEDIA
from igrelay.commands.web import gunicorn_argv
from igrelay.procs import Child, Supervisor, free_port, port_free

DEV_DEBOUNCE = "5"
INSTALL_REDIS = "apt-get install redis-server, brew install redis, or docker run -p 6379:6379 redis"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
Notes = list[tuple[str, str]]  # (what, where) lines of the banner


class Stopped(Exception):
    """A stop signal arrived (or a child died) while waiting for something."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``dev`` parser to ``sub``."""
    parser = sub.add_parser(
        "dev",
        help="run everything on this machine to try igrelay (web, worker, scheduler)",
        description="Run the web server (gunicorn) and a worker with the scheduler. Uses the Redis at "
        "REDIS_URL if it answers, else starts a private redis-server. Without an access token it starts "
        "a sandbox Graph API with demo accounts and media. Missing META_APP_SECRET / META_VERIFY_TOKEN "
        "get dev values; records go to IGRELAY_SINKS (default sqlite:///igrelay.sqlite3). Turns on the web "
        "console (a password is made unless IGRELAY_CONSOLE_PASSWORD is set). Prints the "
        "webhook URL, the console's URL and password, the verify token and an 'igrelay simulate' line to try. "
        "Ctrl-C stops everything.",
    )
    parser.add_argument("--port", type=int, help="web port (default $PORT or 8000)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.set_defaults(handler=cmd_dev)


def cmd_dev(args: argparse.Namespace, settings: Settings) -> int:
    """Start, print how to use it, supervise until a signal or a child's death, stop everything."""
    port = args.port or settings.port
    if not port_free(args.host, port):
        raise CommandError(f"port {port} on {args.host} is in use: stop what uses it or pass --port")
    stop, sup = stop_event(), Supervisor()
    with tempfile.TemporaryDirectory(prefix="igrelay-dev-") as tmp:
        try:
            # A comparison, not a bind: a wildcard bind is reached at 127.0.0.1 (hence the nosec).
            local = args.host in ("0.0.0.0", "")  # nosec B104
            url = f"http://{'127.0.0.1' if local else args.host}:{port}"
            env, notes = prepare(settings, sup, stop, Path(tmp), url)
            env["PORT"] = str(port)
            sup.start("web", gunicorn_argv(f"{args.host}:{port}"), env)
            sup.start("worker", [sys.executable, "-m", "igrelay", "worker"], env)
            wait_for(lambda: _answers(url + "/readyz"), "the web server", sup, stop, 30)
            banner(url, env, settings, notes)
            dead = supervise(sup, stop)
        except Stopped as exc:
            dead = str(exc) or None
        finally:
            print("igrelay dev: stopping ...", file=sys.stderr, flush=True)
            sup.stop()
    if dead:
        raise CommandError(f"{dead}; everything else it started was stopped")
    print("igrelay dev: stopped", file=sys.stderr)
    return 0


def stop_event() -> threading.Event:
    """An event set by SIGINT, SIGTERM or SIGHUP (instead of their default actions)."""
    event = threading.Event()
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda *_: event.set())
    return event


def wait_for(ready: Callable[[], bool], what: str, sup: Supervisor, stop: threading.Event, timeout: float) -> None:
    """Poll ``ready()`` until true; ``Stopped`` on a signal, a dead child or the timeout."""
    deadline = time.monotonic() + timeout
    while not ready():
        dead = sup.exited()
        if dead is not None:
            raise Stopped(f"{dead.name} exited with status {dead.proc.returncode} while starting")
        if stop.is_set():
            raise Stopped()
        if time.monotonic() > deadline:
            raise Stopped(f"{what} did not become ready in {timeout:.0f} s")
        stop.wait(0.2)


def supervise(sup: Supervisor, stop: threading.Event) -> str | None:
    """Wait for a stop signal (None) or a child's death (what happened)."""
    while not stop.wait(0.5):
        dead = sup.exited()
        if dead is not None:
            return f"{dead.name} exited with status {dead.proc.returncode}"
    return None


def prepare(
    settings: Settings, sup: Supervisor, stop: threading.Event, tmp: Path, url: str = "http://127.0.0.1:8000"
) -> tuple[dict[str, str], Notes]:
    """The children's environment (Redis, Graph API, secrets, dev defaults) and notes for the banner."""
    env = dict(os.environ)  # passed through to the children, which read it with Settings
    if not settings.app_secrets:
        env["META_APP_SECRET"] = "dev-" + secrets.token_hex(16)
    notes = [("Redis", _redis(settings, sup, stop, tmp, env))]
    if not settings.access_token and not settings.access_tokens:
        notes.append(("Graph API", _sandbox(sup, stop, env, url)))
        notes.append(("connect", f"{url}/console/accounts, Connect an account (the sandbox's consent page)"))
    if not settings.verify_token:
        env["META_VERIFY_TOKEN"] = "dev-" + secrets.token_urlsafe(12)
    if not settings.console_password:
        env["IGRELAY_CONSOLE_PASSWORD"] = "dev-" + secrets.token_urlsafe(12)
    if not settings.secret_keys:
        env["IGRELAY_SECRET_KEY"] = secrets.token_urlsafe(32)
    if settings.debounce_seconds == Settings.debounce_seconds:  # the default: shorten it to see records soon
        env["IGRELAY_DEBOUNCE_SECONDS"] = DEV_DEBOUNCE
    return env, notes


def _redis(settings: Settings, sup: Supervisor, stop: threading.Event, tmp: Path, env: dict[str, str]) -> str:
    """The configured Redis if it answers, else a private ``redis-server`` on a free port."""
    if _ping(settings.redis_url):
        return f"{redact_url(settings.redis_url)} (REDIS_URL)"
    server = shutil.which("redis-server")
    if not server:
        raise CommandError(f"no Redis answers at {redact_url(settings.redis_url)}; install Redis ({INSTALL_REDIS})")
    port = free_port()
    argv = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    argv += ["--dir", str(tmp), "--logfile", str(tmp / "redis.log")]
    sup.start("redis-server", argv, env)
    env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
    wait_for(lambda: _ping(env["REDIS_URL"]), "redis-server", sup, stop, 10)
    return f"{env['REDIS_URL']} (a private redis-server; its data goes when igrelay dev stops)"


def _ping(url: str) -> bool:
    client = redis_conn.connect(Settings(redis_url=url), "cli", timeout=1.5)
    try:
        return bool(client.ping())
    except RedisError:
        return False
    finally:
        client.close()


def _sandbox(sup: Supervisor, stop: threading.Event, env: dict[str, str], url: str) -> str:
    """Start the sandbox Graph API, playing Meta's login for igrelay's app too, and point the children at it:
    the first demo account by its token, the other one to connect in the browser."""
    from igrelay.sandbox import DEFAULT_APP_ID, demo_data

    app_secret = env["META_APP_SECRET"].split(",")[0].strip()
    argv = [sys.executable, "-m", "igrelay.sandbox", "--port", "0", "--accounts", "2"]
    argv += ["--app-id", DEFAULT_APP_ID, "--app-secret", app_secret, "--redirect-uri", f"{url}/connect/callback"]
    child = sup.start("sandbox Graph API", argv, env, stdout=subprocess.PIPE, text=True)
    line = _first_line(child, stop, 15)
    if not line.startswith("sandbox Graph API on http://"):
        raise Stopped("the sandbox Graph API did not start")
    data = demo_data(2, history=0)  # the same deterministic accounts and tokens the child serves
    tokens = {a: next(t for t, tok in data.tokens.items() if tok.account_id == a) for a in data.accounts}
    graph = line.rpartition(" ")[2]
    first = dict(list(tokens.items())[:1])
    _subscribe_demo(graph, first)
    env.update(GRAPH_API_URL=graph, IG_ACCESS_TOKENS=",".join(f"{a}={t}" for a, t in first.items()), IG_ACCESS_TOKEN="")
    env.update(IGRELAY_LOGIN_TYPE="instagram", META_APP_ID=DEFAULT_APP_ID, IGRELAY_PUBLIC_URL=url)
    env.update(
        IGRELAY_OAUTH_DIALOG_URL=f"{graph}/oauth/authorize", IGRELAY_OAUTH_TOKEN_URL=f"{graph}/oauth/access_token"
    )
    rest = ", ".join(a for a in tokens if a not in first)
    return f"sandbox on {graph} (no IG_ACCESS_TOKEN set), demo account {', '.join(first)}; connect {rest}"


def _first_line(child: Child, stop: threading.Event, timeout: float) -> str:
    """The first non-blank line ``child`` prints on its piped stdout, or "" if none comes in time."""
    out, deadline = child.proc.stdout, time.monotonic() + timeout
    while out is not None and time.monotonic() < deadline and not stop.is_set() and child.proc.poll() is None:
        line = str(out.readline()).strip() if select.select([out], [], [], 0.2)[0] else ""
        if line:
            return line
    return ""


def _subscribe_demo(graph: str, tokens: dict[str, str]) -> None:
    """Subscribe the demo accounts, as `igrelay subscribe` would, so the watchdog sees them subscribed."""
    from workers.subscriptions import INSTAGRAM_FIELDS

    params = {"subscribed_fields": ",".join(INSTAGRAM_FIELDS)}
    for token in tokens.values():
        headers = {"Authorization": f"Bearer {token}"}
        requests.post(f"{graph}/v25.0/me/subscribed_apps", params=params, headers=headers, timeout=5).close()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def _where(sink: str) -> str:
    """A sink URL safe to print; a relative SQLite path with its absolute location."""
    if sink.startswith("sqlite:///") and not sink.startswith("sqlite:////"):
        return f"{sink} ({Path.cwd() / sink.removeprefix('sqlite:///')})"
    from workers import sinks

    return sinks.redact(sink)


def banner(url: str, env: dict[str, str], settings: Settings, notes: Notes) -> None:
    """How to use what is running."""
    sandbox = any(name == "Graph API" for name, _ in notes)
    account = DEMO_ACCOUNT if sandbox else (settings.accounts or [DEMO_ACCOUNT])[0]
    media = DEMO_MEDIA if sandbox else "MEDIA_ID"
    secret = "" if settings.app_secrets else f"META_APP_SECRET={env['META_APP_SECRET']} "
    password = env.get("IGRELAY_CONSOLE_PASSWORD") or settings.console_password
    lines = [
        "igrelay dev is running",
        f"  webhook URL    {url}/webhook   (for Meta, expose it over https, e.g. ngrok http {url.rpartition(':')[2]})",
        f"  verify token   {env['META_VERIFY_TOKEN']}",
        f"  console        {url}/console   (password {password})",
        *(f"  {name:<14} {text}" for name, text in notes),
        f"  records go to  {', '.join(_where(s) for s in settings.sinks)}",
        f"  try            {secret}igrelay simulate comments --url {url}/webhook --account {account} --media {media}",
        "  stop           Ctrl-C (stops everything igrelay dev started)",
    ]
    print("\n".join(lines), flush=True)
