"""Not a sink: an SSRF guard for outgoing sink requests: resolve, check every address, connect to a checked one.

A ``requests.Session`` from :func:`session` connects only to globally reachable unicast
addresses. The check runs inside urllib3's connect step on the very addresses the socket then
connects to, so DNS rebinding between check and connect is impossible, while TLS (SNI and
certificate checks) and the Host header still use the original name. Literal hosts in odd
encodings (``2130706433``, ``0x7f.1``) are decoded like ``inet_aton`` does before the check.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from workers.sinks import PermanentSinkError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NUMERIC = re.compile(r"^[0-9a-fA-FxX.]+$")


class BlockedAddress(PermanentSinkError):
    """The destination resolves to an address sinks may not reach."""


def allowed(ip: Address) -> bool:
    """True for a globally reachable unicast address (IPv4 embedded in IPv6 is checked too)."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = [ip.ipv4_mapped, ip.sixtofour, ip.teredo[1] if ip.teredo else None]
        if ip in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if any(e is not None and not allowed(e) for e in embedded):
            return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local or ip.is_loopback)


def literal(host: str) -> Address | None:
    """The address a literal host means, including inet_aton forms; ``None`` for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    if _NUMERIC.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def checked_addresses(host: str, port: int) -> list[tuple[Any, ...]]:
    """``getaddrinfo`` results for ``host``, or raise ``BlockedAddress`` if ANY of them is not allowed."""
    ip = literal(host)
    if ip is not None:
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        infos: list[tuple[Any, ...]] = [(family, socket.SOCK_STREAM, 6, "", (str(ip), port))]
    else:
        infos = list(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
    for info in infos:
        if not allowed(ipaddress.ip_address(str(info[4][0]).split("%")[0])):
            raise BlockedAddress("sink destination resolves to a private, loopback, link-local or reserved address")
    return infos


def _connect(infos: list[tuple[Any, ...]], timeout: Any, options: Any) -> socket.socket:
    error: OSError | None = None
    for family, kind, proto, _name, sockaddr in infos:
        sock = socket.socket(family, kind, proto)
        try:
            for opt in options or ():
                sock.setsockopt(*opt)
            if isinstance(timeout, (int, float)):
                sock.settimeout(timeout)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error or OSError("no address to connect to")


class _Guarded(HTTPConnection):
    """Mixin for urllib3 connections: connect only to addresses that passed :func:`allowed`."""

    def _new_conn(self) -> socket.socket:
        try:
            infos = checked_addresses(self._dns_host, self.port)
        except socket.gaierror as exc:  # nothing was sent: the delivery is retried, even to at-most-once sinks
            raise NameResolutionError(self.host, self, exc) from exc
        try:
            return _connect(infos, self.timeout, self.socket_options)
        except TimeoutError as exc:
            raise ConnectTimeoutError(self, "connection timed out") from exc
        except OSError as exc:
            raise NewConnectionError(self, f"failed to connect: {exc.strerror or type(exc).__name__}") from exc


class GuardedHTTPConnection(_Guarded):
    """Plain HTTP through the guard."""


class GuardedHTTPSConnection(_Guarded, HTTPSConnection):
    """HTTPS through the guard (SNI and certificate checks use the original host name)."""


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """An adapter whose pools use the guarded connections."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def session(allow_private: bool, pool_size: int = 10) -> requests.Session:
    """A Session that never follows proxies from the environment, guarded unless ``allow_private``."""
    s = requests.Session()
    s.trust_env = False  # no proxy or .netrc from the environment can route around the guard
    cls = HTTPAdapter if allow_private else GuardedAdapter
    adapter = cls(pool_connections=2, pool_maxsize=pool_size, max_retries=0)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s
