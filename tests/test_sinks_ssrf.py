"""The SSRF guard: no connection to anything but 127.0.0.1 is ever opened by these tests.

The resolver is stubbed and ``socket.socket.connect`` refuses (and records) every address other
than 127.0.0.1, so the guard is checked without sending traffic anywhere.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest
from conftest import make_settings

from workers import records as R
from workers.sinks import SinkError, load
from workers.sinks import _netguard as netguard

PUBLIC = "93.184.216.34"


@pytest.fixture
def net(monkeypatch):  # type: ignore[no-untyped-def]
    """Stub DNS (``names``) and a connect() that only reaches 127.0.0.1."""
    names: dict[str, list[str]] = {}
    attempts: list[tuple] = []
    lookups: list[str] = []
    real_connect = socket.socket.connect

    def getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        lookups.append(host)
        if netguard.literal(host) is not None:
            names.setdefault(host, [host])
        if host not in names:
            raise socket.gaierror(socket.EAI_NONAME, "stubbed resolver: unknown name")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in names[host]
        ]

    def connect(self, address):  # type: ignore[no-untyped-def]
        attempts.append(address)
        if address[0] != "127.0.0.1":
            raise ConnectionRefusedError(111, "test: connections leave 127.0.0.1 only")
        return real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    return names, attempts, lookups


def guarded(tmp_path, url: str, **options):  # type: ignore[no-untyped-def]
    return load(url, options, make_settings(tmp_path))


def record() -> dict:
    return R.account_insights("1", "2026-11-20", {"reach": 1}, {}, "schedule")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/",
        "https://169.254.169.254/latest/meta-data",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://017700000001/",
        "http://10.0.0.8/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://224.0.0.1/",
        "http://0.0.0.0/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://internal.example/",
        "http://mixed.example/",
    ],
)
def test_blocked_destinations_open_no_connection(tmp_path, net, url) -> None:
    names, attempts, _ = net
    names["internal.example"] = ["10.1.2.3"]
    names["mixed.example"] = [PUBLIC, "127.0.0.1"]  # every address is checked, not just the first
    sink = guarded(tmp_path, url)
    with pytest.raises(netguard.BlockedAddress) as info:
        sink.send([record()])
    sink.close()
    assert attempts == [] and "example" not in str(info.value)


def test_checked_address_is_the_one_connected_to(tmp_path, net) -> None:
    names, attempts, lookups = net
    names["hooks.example"] = [PUBLIC]
    sink = guarded(tmp_path, "http://hooks.example:8080/in")
    with pytest.raises(SinkError) as info:  # refused by the test's connect(), after the guard let it through
        sink.send([record()])
    sink.close()
    assert not isinstance(info.value, netguard.BlockedAddress)
    assert attempts == [(PUBLIC, 8080)] and lookups == ["hooks.example"]


def test_rebinding_name_cannot_switch_to_loopback(tmp_path, net, receiver) -> None:
    names, attempts, lookups = net
    names["rebind.example"] = [PUBLIC]
    port = receiver.url.rsplit(":", 1)[1]
    sink = guarded(tmp_path, f"http://rebind.example:{port}/")
    with pytest.raises(SinkError):
        sink.send([record()])
    names["rebind.example"] = ["127.0.0.1"]  # the name now points at loopback
    with pytest.raises(netguard.BlockedAddress):
        sink.send([record()])
    sink.close()
    assert receiver.requests == [] and all(a[0] == PUBLIC for a in attempts)


def test_redirect_to_metadata_is_not_followed(tmp_path, net, receiver, monkeypatch) -> None:
    names, attempts, _ = net
    names["public.example"] = ["127.0.0.1"]
    allowed = netguard.allowed
    # Let the guard treat this one loopback receiver as public, to see what a redirect does.
    monkeypatch.setattr(netguard, "allowed", lambda ip: ip == ipaddress.ip_address("127.0.0.1") or allowed(ip))
    receiver.script = [(302, {"Location": "http://169.254.169.254/latest/meta-data/"})]
    port = receiver.url.rsplit(":", 1)[1]
    sink = guarded(tmp_path, f"http://public.example:{port}/hook")
    with pytest.raises(SinkError) as info:
        sink.send([record()])
    sink.close()
    assert "302" in str(info.value)
    assert len(receiver.requests) == 1 and all(a[0] == "127.0.0.1" for a in attempts)


def test_allow_private_per_sink_and_slack_endpoint_is_guarded(tmp_path, net, receiver) -> None:
    sink = guarded(tmp_path, receiver.url, allow_private=True)
    sink.send([record()])
    sink.close()
    slack = guarded(tmp_path, "slack://hooks.slack.com/services/T0/B0/XXXX", endpoint=receiver.url)
    with pytest.raises(netguard.BlockedAddress):
        slack.send([record()])
    slack.close()
    assert len(receiver.requests) == 1


def test_proxies_from_the_environment_are_ignored(tmp_path, net, monkeypatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    sink = guarded(tmp_path, "http://169.254.169.254/")
    with pytest.raises(netguard.BlockedAddress):
        sink.send([record()])
    sink.close()
