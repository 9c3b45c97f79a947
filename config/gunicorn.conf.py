"""gunicorn settings for ``web`` (the Procfile's web process): binds 0.0.0.0:$PORT.

Sync workers are right here: each request is one short Redis round trip. Read through
``Settings`` so a bad PORT stops the process with one line naming it.
"""

import sys

from config.settings import ConfigError, Settings

try:
    _settings = Settings.from_env().require_web()
except ConfigError as exc:
    sys.exit(f"igrelay web: {exc}")  # one line, exit status 1, no traceback
bind = f"0.0.0.0:{_settings.port}"
workers = _settings.web_concurrency  # WEB_CONCURRENCY, set by most PaaS
worker_class = "sync"
timeout = 30
graceful_timeout = 25
keepalive = 5
accesslog = None
max_requests = 10000
max_requests_jitter = 1000
