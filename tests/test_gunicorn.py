"""The Procfile's web line under a real gunicorn: signed delivery stored, chunked oversize 413,
one-line refusal to start without secrets."""

import subprocess

import pytest
import requests

from igrelay.payloads import sign
from tests.support.env import SECRET, process_env
from tests.support.procs import ROOT, Procs, free_port, procfile_command


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
    assert redis.xlen("igrelay:inbox") == 1
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
    assert redis.xlen("igrelay:inbox") == 1


def test_web_refuses_to_start_without_secret_in_one_line():
    env = web_env(PORT=str(free_port()))
    del env["META_APP_SECRET"]
    done = subprocess.run(procfile_command("web", env), cwd=ROOT, env=env, capture_output=True, timeout=30)
    assert done.returncode != 0
    lines = done.stderr.decode().strip().splitlines()
    assert lines[-1].startswith("igrelay web: META_APP_SECRET") and "Traceback" not in done.stderr.decode()
