"""The Procfile's web line under a real gunicorn: signed delivery stored, chunked oversize 413,
one-line refusal to start without secrets; ``igrelay web`` without the venv on PATH."""

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from config import contract
from igrelay.payloads import sign
from igrelay.procs import free_port
from tests.conftest import SECRET, TEST_REDIS_URL, VERIFY_TOKEN

ROOT = Path(__file__).resolve().parent.parent


def procfile_command(name: str) -> list[str]:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(name + ":"):
            return shlex.split(line.split(":", 1)[1])
    raise AssertionError(f"no {name} process in Procfile")


def web_env(port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("META_", "IGRELAY_", "REDIS_URL"))}
    env.update(
        PORT=str(port),
        META_APP_SECRET=SECRET,
        META_VERIFY_TOKEN=VERIFY_TOKEN,
        REDIS_URL=TEST_REDIS_URL,
        IGRELAY_MAX_BODY_BYTES="2000",
        WEB_CONCURRENCY="2",
        LOG_FORMAT="json",
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
    )
    env.update(extra)
    return env


@contextmanager
def serve(argv: list[str], env: dict[str, str], cwd: Path = ROOT) -> Iterator[str]:
    """Run ``argv`` while in the block; its base URL once ``/healthz`` answers."""
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    url = f"http://127.0.0.1:{env['PORT']}"
    try:
        for _ in range(100):
            try:
                if requests.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        else:
            proc.kill()
            raise AssertionError(proc.communicate()[1].decode())
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=30)


@pytest.fixture
def web(redis):
    with serve(procfile_command("web"), web_env(free_port())) as url:
        yield url


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
    env = web_env(free_port())
    del env["META_APP_SECRET"]
    done = subprocess.run(procfile_command("web"), cwd=ROOT, env=env, capture_output=True, timeout=30)
    assert done.returncode != 0
    lines = done.stderr.decode().strip().splitlines()
    assert lines[-1].startswith("igrelay web: META_APP_SECRET") and "Traceback" not in done.stderr.decode()


def test_igrelay_web_needs_no_venv_on_path(tmp_path: Path, redis) -> None:  # type: ignore[no-untyped-def]
    """``.venv/bin/igrelay web`` finds gunicorn through its own interpreter and opens no control socket."""
    env = web_env(free_port(), PATH="/usr/bin:/bin", HOME=str(tmp_path))
    env.pop("XDG_RUNTIME_DIR", None)
    with serve([str(Path(sys.executable).parent / "igrelay"), "web"], env, cwd=tmp_path) as url:
        assert requests.get(url + "/healthz", timeout=5).status_code == 200
    assert not (tmp_path / ".gunicorn").exists()
