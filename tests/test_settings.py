"""config.settings: parsing, defaults, one-line errors naming the variable, no secrets in repr."""

import pytest

from config.settings import ConfigError, Settings, parse_duration, redact_url


def test_defaults_match_the_contract():
    s = Settings.from_env({})
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.graph_api_url == "https://graph.instagram.com"
    assert s.graph_api_version >= "v25.0"
    assert s.sinks == ("sqlite:///igrelay.sqlite3",)
    assert s.debounce_seconds == 30
    assert s.refresh_schedule == (3600, 21600, 86400, 259200, 604800)
    assert s.poll_interval == 600
    assert s.max_body_bytes == 4194304
    assert s.port == 8000


def test_login_type_story_schedule_and_app_id():
    assert Settings.from_env({}).login_type == "instagram"
    assert Settings.from_env({"GRAPH_API_URL": "https://graph.facebook.com"}).login_type == "facebook"
    loopback = Settings.from_env({"GRAPH_API_URL": "http://127.0.0.1:9", "IGRELAY_LOGIN_TYPE": "Facebook"})
    assert loopback.login_type == "facebook" and not loopback.is_instagram_login
    s = Settings.from_env({})
    assert s.story_schedule == (900, 3600, 10800, 21600, 43200, 82800) and s.meta_app_id is None
    custom = Settings.from_env({"IGRELAY_STORY_SCHEDULE": "30m,20h", "META_APP_ID": "123"})
    assert custom.story_schedule == (1800, 72000)
    assert Settings.from_env({"META_APP_ID": " 123 "}).meta_app_id == "123"


@pytest.mark.parametrize("raw,seconds", [("30", 30), ("90s", 90), ("10m", 600), ("6h", 21600), ("7d", 604800)])
def test_durations(raw, seconds):
    assert parse_duration("X", raw) == seconds


@pytest.mark.parametrize(
    "env,name",
    [
        ({"IGRELAY_DEBOUNCE_SECONDS": "soon"}, "IGRELAY_DEBOUNCE_SECONDS"),
        ({"IGRELAY_REFRESH_SCHEDULE": "1h,0"}, "IGRELAY_REFRESH_SCHEDULE"),
        ({"IGRELAY_POLL_INTERVAL": "-5"}, "IGRELAY_POLL_INTERVAL"),
        ({"IGRELAY_MAX_BODY_BYTES": "big"}, "IGRELAY_MAX_BODY_BYTES"),
        ({"PORT": "0"}, "PORT"),
        ({"GRAPH_API_VERSION": "25"}, "GRAPH_API_VERSION"),
        ({"GRAPH_API_URL": "ftp://x"}, "GRAPH_API_URL"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"IG_ACCESS_TOKENS": "abc=secret-token-value"}, "IG_ACCESS_TOKENS"),
        ({"IGRELAY_CONFIG": "/nonexistent/igrelay.toml"}, "IGRELAY_CONFIG"),
        ({"IGRELAY_LOGIN_TYPE": "twitter"}, "IGRELAY_LOGIN_TYPE"),
        ({"IGRELAY_STORY_SCHEDULE": "1h,25h"}, "IGRELAY_STORY_SCHEDULE"),
        ({"META_APP_ID": "my-app"}, "META_APP_ID"),
    ],
)
def test_bad_values_name_the_variable_in_one_line(env, name):
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    text = str(info.value)
    assert text.startswith(name + ":") and "\n" not in text
    assert "secret-token-value" not in text


def test_web_requires_secret_and_verify_token():
    with pytest.raises(ConfigError, match="^META_APP_SECRET"):
        Settings.from_env({"META_VERIFY_TOKEN": "t"}).require_web()
    with pytest.raises(ConfigError, match="^META_VERIFY_TOKEN"):
        Settings.from_env({"META_APP_SECRET": "s"}).require_web()


def test_secrets_and_tokens():
    s = Settings.from_env(
        {
            "META_APP_SECRET": "meta-secret, ig-secret",
            "IG_ACCESS_TOKEN": "default-token",
            "IG_ACCESS_TOKENS": "111=tok-one,222=tok-two",
            "IGRELAY_SINKS": "postgresql://u:dbpassword@h/db",
        }
    )
    assert s.app_secrets == ("meta-secret", "ig-secret")
    assert s.token_for("111") == "tok-one" and s.token_for("999") == "default-token"
    assert s.accounts == ("111", "222")
    shown = repr(s)
    for secret in ("meta-secret", "ig-secret", "default-token", "tok-one", "dbpassword"):
        assert secret not in shown


def test_toml_config_and_dotenv(tmp_path, monkeypatch):
    conf = tmp_path / "igrelay.toml"
    conf.write_text('[metrics]\nREELS = ["views", "reach"]\n')
    (tmp_path / ".env").write_text(f"IGRELAY_CONFIG={conf}\nPORT=9001\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PORT", raising=False)
    monkeypatch.delenv("IGRELAY_CONFIG", raising=False)
    s = Settings.from_env()
    assert s.port == 9001
    assert s.section("metrics")["REELS"] == ["views", "reach"]


@pytest.mark.parametrize(
    "toml,named",
    [
        ('[fetch]\nthreads = "many"\n', "[fetch] threads"),
        ("[fetch]\nbatch = 0\n", "[fetch] batch"),
        ('[graph]\nread_timeout = "slow"\n', "[graph] read_timeout"),
        ('[watchdog]\ninterval = "often"\n', "[watchdog] interval"),
        ("[watchdog]\nquiet = true\n", "[watchdog] quiet"),
        ('[metrics]\nREELS = "views"\n', "[metrics] REELS"),
        ("fetch = 3\n", "[fetch]"),
    ],
)
def test_a_bad_toml_value_read_at_runtime_stops_the_start_naming_it(tmp_path, toml, named):
    conf = tmp_path / "igrelay.toml"
    conf.write_text(toml)
    with pytest.raises(ConfigError, match="IGRELAY_CONFIG") as info:
        Settings.from_env({"IGRELAY_CONFIG": str(conf)})
    assert named in str(info.value) and "\n" not in str(info.value)


def test_toml_tables_read_at_runtime_are_typed_once(tmp_path):
    conf = tmp_path / "igrelay.toml"
    conf.write_text('[fetch]\nthreads = "4"\nbatch = 50\n[graph]\nread_timeout = 2\n[watchdog]\ninterval = "10s"\n')
    s = Settings.from_env({"IGRELAY_CONFIG": str(conf)})
    assert (s.fetch_threads, s.fetch_batch, s.graph_timeout) == (4, 50, (3.05, 2.0))
    assert (s.watchdog_interval, s.watchdog_quiet) == (60, 48 * 3600)  # checks at most once a minute
    defaults = Settings.from_env({})
    assert (defaults.fetch_threads, defaults.fetch_batch, defaults.watchdog_interval) == (32, 200, 3600)


def test_redact_url_hides_passwords_and_hook_paths():
    assert "pw" not in redact_url("postgresql://user:pw@db.example/x")
    assert "T000/B000/XXXXSECRET" not in redact_url("slack://hooks.slack.com/services/T000/B000/XXXXSECRET")


def test_rediss_certificate_check_can_be_relaxed_for_heroku():
    assert Settings.from_env({"REDIS_URL": "rediss://h:6380/0"}).redis_options() == {}
    relaxed = Settings.from_env({"REDIS_URL": "rediss://h:6380/0", "REDIS_TLS_VERIFY": "false"})
    assert relaxed.redis_options() == {"ssl_cert_reqs": "none"}
    assert Settings.from_env({"REDIS_URL": "redis://h/0", "REDIS_TLS_VERIFY": "false"}).redis_options() == {}
