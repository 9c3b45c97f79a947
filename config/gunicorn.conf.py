"""gunicorn settings for ``web`` (the Procfile's web process): binds 0.0.0.0:$PORT.

Threaded workers (``gthread``): a slow or stalled client holds one thread, not a whole worker, and
the receiver stops waiting for a stalled body after a few seconds, so clients that stall cannot
block the deliveries and health checks of the others. Read through ``Settings`` so a bad PORT stops
the process with one line naming it.
"""

import sys

from config.settings import ConfigError, Settings

try:
    _settings = Settings.from_env().require_web()
except ConfigError as exc:
    sys.exit(f"igrelay web: {exc}")  # one line, exit status 1, no traceback
bind = f"0.0.0.0:{_settings.port}"
workers = _settings.web_concurrency  # WEB_CONCURRENCY, set by most PaaS
worker_class = "gthread"
threads = 8  # per worker: each request is one short Redis round trip, so threads mostly wait on sockets
timeout = 30
graceful_timeout = 25
keepalive = 5
accesslog = None
max_requests = 10000
max_requests_jitter = 1000
# gunicorn 25.1+ otherwise opens a control socket for gunicornc under $XDG_RUNTIME_DIR or ~/.gunicorn/
# (one path shared by every gunicorn of the user); igrelay does not use it. Older gunicorns ignore this.
control_socket_disable = True


def post_worker_init(worker) -> None:  # type: ignore[no-untyped-def]  # gunicorn's hook signature
    """Move the loaded app's objects out of the garbage collector's sight: a full collection then
    walks only what requests allocate (a 1000-change delivery parses into ~10k objects), not the
    whole of Flask, redis-py and RQ, which made every few-dozenth big delivery ~30 ms slower."""
    import gc

    gc.freeze()
