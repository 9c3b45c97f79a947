"""Baseline: a bare Flask app answering 200, served by the same gunicorn settings as igrelay."""

from flask import Flask

app = Flask(__name__)


@app.post("/webhook")
def webhook() -> tuple[str, int]:
    """Read the body and answer 200, nothing else."""
    from flask import request

    request.get_data()
    return '{"status":"ok"}', 200


@app.get("/healthz")
def healthz() -> str:
    """Alive."""
    return "ok"
