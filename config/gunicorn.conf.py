"""gunicorn settings for ``web`` (the Procfile's web process): binds 0.0.0.0:$PORT.

Threaded workers (``gthread``, see ``LingerOffTheLoop``): a slow or stalled client holds one thread,
not a whole worker, and the receiver stops waiting for a stalled body after a few seconds, so clients
that stall cannot block the deliveries and health checks of the others. Read through ``Settings`` so
a bad PORT stops the process with one line naming it.
"""

import sys

from gunicorn.workers.gthread import ThreadWorker

from config.settings import ConfigError, Settings

try:
    _settings = Settings.from_env().require_web()
except ConfigError as exc:
    sys.exit(f"igrelay web: {exc}")  # one line, exit status 1, no traceback
bind = f"0.0.0.0:{_settings.port}"
workers = _settings.web_concurrency  # WEB_CONCURRENCY, set by most PaaS


class LingerOffTheLoop(ThreadWorker):
    """gthread, but a connection it closes lingers on its request's thread, not on the event loop.

    gunicorn 27 closes a connection that is not kept alive with ``util.close_graceful``: it half-closes
    and then waits up to 2 s for the client to close too, and it does that in ``finish_request``, on the
    worker's one event-loop thread. A client that keeps its socket open after an answer (a stalled upload
    answered 408, any ``Connection: close`` request) then stops that worker from accepting, and from
    serving its kept-alive connections, for 2 s each: a few of them made Meta's deliveries wait over 5 s.
    Here the thread that served the request lingers instead; the loop's own close then finds the socket
    closed and returns at once. (Older gunicorns return a tuple from ``handle`` and close without
    lingering: this changes nothing there.)
    """

    def handle(self, conn):  # gunicorn 27's: True (keep alive), False (close) or a "defer" marker
        keep = super().handle(conn)
        if keep is False:  # neither kept alive nor deferred to the poller: the loop would close it next
            conn.close(graceful=True)
        return keep

    def handle_request(self, req, conn):  # type: ignore[no-untyped-def]  # gunicorn's signature
        """Answer the ``KEEPALIVE_REQUESTS``-th request of a connection with ``Connection: close``, as
        nginx's ``keepalive_requests`` does. The workers race to accept connections, and a client that
        keeps a few alive (a load generator, a router in front of the dyno) often leaves most of them
        with one worker for good: that worker, its threads fighting over one GIL, then spent twice the
        CPU a request and answered at about half the box's rate while the other idled (measured on 2
        cores, 16 connections). Reconnecting now and then lets the idle worker, quicker to accept, take
        its share."""
        conn.igrelay_served = getattr(conn, "igrelay_served", 0) + 1
        if conn.igrelay_served >= KEEPALIVE_REQUESTS:
            req.must_close = True
        return super().handle_request(req, conn)


KEEPALIVE_REQUESTS = 100


worker_class = LingerOffTheLoop
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
