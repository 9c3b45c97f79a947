"""Stalled uploads at the real gunicorn: twice as many as it has workers, re-opened as fast as they are
dropped, while /healthz and signed deliveries keep answering within 1 s."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import requests
from redis import Redis

from config import contract
from tests.faults.conftest import base_env, comment_delivery, signature
from tests.support.procs import Procs
from webhook.receiver import BODY_READ_TIMEOUT

WEB_CONCURRENCY = 2


def stall(port: int) -> socket.socket:
    """A signed-looking upload whose headers promise 1 MB, of which it sends one byte, then nothing."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    head = (
        "POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"X-Hub-Signature-256: sha256={'0' * 64}\r\nContent-Length: 1000000\r\n\r\n{{"
    )
    sock.sendall(head.encode())
    return sock


def dropped(sock: socket.socket) -> bytes | None:
    """What the server answered a stalled upload once it gave up on it; None while it still waits."""
    sock.setblocking(False)
    try:
        return sock.recv(4096) or b"(closed)"
    except BlockingIOError:
        return None
    except OSError:
        return b"(reset)"


def test_stalled_uploads_do_not_block_the_web(procs: Procs, redis: Redis, tmp_path: Path) -> None:
    _proc, url = procs.web(base_env(tmp_path, WEB_CONCURRENCY=str(WEB_CONCURRENCY)))
    port = int(url.rsplit(":", 1)[1])
    stalled: list[socket.socket] = []
    try:  # every socket closed whatever fails: a leaked one fails a later test (ResourceWarning as an error)
        with requests.Session() as session:
            answers, drops = _checks_while_stalled(port, url, session, stalled)
    finally:
        for sock in stalled:
            sock.close()
    slow = [a for a in answers if a[:2] != (200, 200) or a[2] > 1.0]
    assert not slow, f"{len(slow)} of {len(answers)} checks slow or failed: {slow[:5]}"
    assert redis.xlen(contract.INBOX) == len(answers)
    assert len(drops) >= 2 * WEB_CONCURRENCY, "stalled uploads must be dropped after the body read timeout"
    assert all(d.startswith(b"HTTP/1.1 408") for d in drops), drops[:3]


def _checks_while_stalled(
    port: int, url: str, session: requests.Session, stalled: list[socket.socket]
) -> tuple[list[tuple[int, int, float]], list[bytes]]:
    """Twice as many stalled uploads as workers, each re-opened as soon as it is dropped; meanwhile a health
    check (a new connection each time) and a delivery (on one kept-alive connection) every 0.1 s.
    Returns ((health status, delivery status, seconds both took) per check, what each drop answered)."""
    stalled += [stall(port) for _ in range(2 * WEB_CONCURRENCY)]
    time.sleep(0.5)  # every stalled upload is now in a read of its body
    answers: list[tuple[int, int, float]] = []
    drops: list[bytes] = []
    deadline = time.monotonic() + BODY_READ_TIMEOUT + 4  # past the first drops, with the re-opened stalls
    while time.monotonic() < deadline:
        body, _ids = comment_delivery(1)
        started = time.monotonic()
        with requests.get(url + "/healthz", timeout=5) as health:  # a new connection each time
            pass
        with session.post(url + "/webhook", data=body, headers=signature(body), timeout=5) as delivery:
            pass
        answers.append((health.status_code, delivery.status_code, time.monotonic() - started))
        for i, sock in enumerate(stalled):
            if (answer := dropped(sock)) is not None:  # the attacker reconnects at once
                drops.append(answer)
                sock.close()
                stalled[i] = stall(port)
        time.sleep(0.1)
    return answers, drops
