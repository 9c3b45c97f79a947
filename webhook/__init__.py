"""The webhook web app: ``create_app(settings=None)`` builds the Flask app gunicorn serves."""

from __future__ import annotations

from flask import Flask
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from config.logs import setup_logging
from config.settings import Settings
from webhook.store import DeliveryStore

# Short timeouts and no client-side retries: a dead Redis must give a 503 well within 2 s.
REDIS_TIMEOUT = 1.0


def create_app(settings: Settings | None = None, redis: Redis | None = None) -> Flask:
    """The app for ``settings`` (default: from the environment). Refuses to build without the
    app secret and verify token."""
    settings = (settings or Settings.from_env()).require_web()
    setup_logging(settings)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    redis = redis or Redis.from_url(
        settings.redis_url,
        socket_timeout=REDIS_TIMEOUT,
        socket_connect_timeout=REDIS_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
        **settings.redis_options(),
    )
    app.extensions["igrelay"] = {"settings": settings, "store": DeliveryStore(redis), "redis": redis}
    from webhook.views import bp

    app.register_blueprint(bp)
    from webhook.connect import bp as connect_bp

    app.register_blueprint(connect_bp)
    if settings.console_password:  # off: no route, no session, no proxy fix for /webhook to pay for
        from webhook.console import init_app

        init_app(app, settings, redis)
    return app
