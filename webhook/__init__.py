"""The webhook web app: ``create_app(settings=None)`` builds the Flask app gunicorn serves."""

from __future__ import annotations

from flask import Flask
from redis import Redis

from config import redis_conn
from config.logs import setup_logging
from config.settings import Settings
from webhook.store import DeliveryStore


def create_app(settings: Settings | None = None, redis: Redis | None = None) -> Flask:
    """The app for ``settings`` (default: from the environment). Refuses to build without the
    app secret and verify token."""
    settings = (settings or Settings.from_env()).require_web()
    setup_logging(settings)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    # Short timeouts and no client-side retries: a dead Redis must give a 503 well within 2 s.
    redis = redis or redis_conn.connect(settings, "web")
    store = DeliveryStore(redis, replicas=redis_conn.replicas_to_wait_for(settings))
    app.extensions["igrelay"] = {"settings": settings, "store": store, "redis": redis}
    from webhook.views import bp

    app.register_blueprint(bp)
    from webhook.connect import bp as connect_bp

    app.register_blueprint(connect_bp)
    if settings.console_password:  # off: no route, no session, no proxy fix for /webhook to pay for
        from webhook.console import init_app

        init_app(app, settings, redis)
    from webhook.receiver import WebhookReceiver

    # Deliveries skip Flask's dispatch: it cost as much CPU as storing them (see webhook.receiver).
    app.wsgi_app = WebhookReceiver(app.wsgi_app, settings, store)  # type: ignore[method-assign]
    return app
