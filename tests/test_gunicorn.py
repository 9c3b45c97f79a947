"""The Procfile's web line under a real gunicorn: signed delivery stored, chunked oversize 413,
one-line refusal to start without secrets; ``igrelay web`` without the venv on PATH."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from config import contract
from igrelay.payloads import sign
from tests.support.env import SECRET, process_env
from tests.support.procs import ROOT, Procs, answers, free_port, procfile_command, wait_until


def web_env(**extra: str) -> dict[str, str]:
    return process_env(IGRELAY_MAX_BODY_BYTES="2000", WEB_CONCURRENCY="2", LOG_FORMAT="json", **extra)


@pytest.fixture
def web(procs: Procs) -> str:
    """The Procfile's web line as written (gunicorn binds where its config says); its URL on loopback."""
    _proc, url = procs.web(web_env(), loopback=False)
    return url


def test_procfile_web_serves_signed_deliveries(web, redis):
    body = b'{"object":"instagram","entry":[{"id":"1","time":1,"changes":[]}]}'
    answer = requests.post(web + "/webhook", data=body, headers={"X-Hub-Signature-256": sign(body, SECRET)}, timeout=5)
    assert answer.status_code == 200
    assert redis.xlen(contract.INBOX) == 1
    assert requests.get(web + "/readyz", timeout=5).status_code == 200


def test_chunked_oversize_is_413(web, redis):
    body = b'{"object":"instagram","entry":[' + b" " * 5000 + b"]}"
    chunks = (body[i : i + 500] for i in range(0, len(body), 500))
    answer = requests.post(
        web + "/webhook", data=chunks, timeout=5, headers={"X-Hub-Signature-256": sign(body, SECRET)}
    )
    assert answer.status_code == 413
    small = b'{"object":"instagram","entry":[]}'
    answer = requests.post(
        web + "/webhook",
        data=iter([small[:10], small[10:]]),
        timeout=5,
        headers={"X-Hub-Signature-256": sign(small, SECRET)},
    )
    assert answer.status_code == 200
    assert redis.xlen(contract.INBOX) == 1


def test_web_refuses_to_start_without_secret_in_one_line():
    env = web_env(PORT=str(free_port()))
    del env["META_APP_SECRET"]
    done = subprocess.run(procfile_command("web", env), cwd=ROOT, env=env, capture_output=True, timeout=30)
    assert done.returncode != 0
    lines = done.stderr.decode().strip().splitlines()
    assert lines[-1].startswith("igrelay web: META_APP_SECRET") and "Traceback" not in done.stderr.decode()


def test_igrelay_web_needs_no_venv_on_path(procs: Procs, tmp_path: Path, redis) -> None:  # type: ignore[no-untyped-def]
    """``.venv/bin/igrelay web`` finds gunicorn through its own interpreter and opens no control socket."""
    port = free_port()
    env = web_env(PORT=str(port), PATH="/usr/bin:/bin", HOME=str(tmp_path))
    env.pop("XDG_RUNTIME_DIR", None)
    proc = procs.start("igrelay-web", [str(Path(sys.executable).parent / "igrelay"), "web"], env, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}/healthz"
    assert wait_until(lambda: answers(url), 20, 0.1) is not None, proc.text()[-3000:]
    proc.stop()
    assert not (tmp_path / ".gunicorn").exists()


def test_clients_that_keep_a_closed_connection_open_do_not_stall_the_worker(procs: Procs, redis) -> None:  # type: ignore[no-untyped-def]
    """gunicorn lingers up to 2 s for the client's close after a ``Connection: close`` answer: on the request's
    thread here, never on the one worker's event loop, which serves the kept-alive connections meanwhile."""
    _proc, url = procs.web({**web_env(), "WEB_CONCURRENCY": "1"})
    port = int(url.rsplit(":", 1)[1])
    lingering: list[socket.socket] = []
    try:
        with requests.Session() as session:
            with session.get(url + "/healthz", timeout=5) as first:  # the kept-alive connection
                assert first.status_code == 200
            for _ in range(3):  # answered, then kept open: 2 s of lingering each
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                lingering.append(sock)
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            started = time.monotonic()
            with session.get(url + "/healthz", timeout=10) as again:
                took = time.monotonic() - started
            assert again.status_code == 200
    finally:
        for sock in lingering:
            sock.close()
    assert took < 1.5, f"a kept-alive request waited {took:.1f} s behind lingering closes"


def test_a_kept_alive_connection_is_closed_after_its_hundredth_request(web, redis):  # type: ignore[no-untyped-def]
    """So the two workers share a client's kept-alive connections: the 100th answer on one connection says
    ``Connection: close`` and the client reconnects, to whichever worker accepts first."""
    body = b'{"object":"instagram","entry":[{"id":"1","time":1,"changes":[]}]}'
    headers = {"X-Hub-Signature-256": sign(body, SECRET)}
    with requests.Session() as session:
        answers_ = [session.post(web + "/webhook", data=body, headers=headers, timeout=5) for _ in range(101)]
    assert all(a.status_code == 200 for a in answers_)
    said = [a.headers.get("Connection", "").lower() for a in answers_]
    assert "close" not in said[:99]
    assert said[99] == "close" and said[100] != "close"  # the 101st came on a new connection
    assert redis.xlen(contract.INBOX) == 101
