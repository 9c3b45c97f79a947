# Sourced by bin/dev, bin/test, bin/bench and bin/lock: a project venv with igrelay installed, and a Redis that answers.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"

setup_venv() {
  if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
  fi
  # Reinstall only when pyproject.toml or the lock changed since the last install. The runtime
  # dependencies come at the versions requirements.txt pins (the deploy's), the dev tools around them.
  local stamp=".venv/.igrelay-installed"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements.txt -nt "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -c requirements.txt -e ".[dev]"
    touch "$stamp"
  fi
  export PATH="$ROOT/.venv/bin:$PATH"
}

redis_answers() {
  .venv/bin/python - "$1" <<'PY' >/dev/null 2>&1
import sys, redis
redis.Redis.from_url(sys.argv[1], socket_connect_timeout=1).ping()
PY
}

# ensure_redis URL WHO: return once a Redis answers at URL, starting redis-server on 127.0.0.1:6379
# when none does; WHO (bin/test, bin/bench) names the caller in messages.
ensure_redis() {
  local url="$1" who="$2"
  if redis_answers "$url"; then return 0; fi
  if ! command -v redis-server >/dev/null; then
    echo "$who: no Redis answers at $url and redis-server is not installed (apt-get install redis-server)" >&2
    exit 1
  fi
  echo "$who: starting redis-server on 127.0.0.1:6379" >&2
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --logfile /tmp/igrelay-test-redis.log
  for _ in $(seq 50); do redis_answers "$url" && return 0; sleep 0.1; done
  echo "$who: redis-server did not come up (see /tmp/igrelay-test-redis.log)" >&2
  exit 1
}

ensure_test_redis() {
  ensure_redis "${IGRELAY_TEST_REDIS_URL:-redis://127.0.0.1:6379/13}" bin/test
}

# The browser tests drive Debian's chromium with Playwright (a dev extra): install chromium when it
# is missing and we may (root with apt-get); otherwise say so, and the browser tests fail under CI.
# ensure_package BINARY PACKAGE WHO WHAT: install Debian's PACKAGE with apt-get when BINARY is missing
# (as root); otherwise say that WHAT will not run. Returns 1 when BINARY is still missing.
ensure_package() {
  local binary="$1" package="$2" who="$3" what="$4"
  if command -v "$binary" >/dev/null; then return 0; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "$who: installing $package for $what" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null && return 0
  fi
  echo "$who: $binary is missing (apt-get install $package); $what will not run" >&2
  return 1
}

ensure_chromium() {
  ensure_package /usr/bin/chromium chromium bin/test "the browser tests" || true
}
