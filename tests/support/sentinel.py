"""A Redis Sentinel deployment on loopback for tests: a primary, replicas and three sentinels, each a real
``redis-server`` (``--sentinel`` for the sentinels) started by the ``procs`` harness, with AOF on every data node."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from redis import Redis

from tests.support.procs import Proc, Procs, free_port, wait_until

MASTER = "mymaster"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000


@dataclass
class Deployment:
    """Ports and processes of one deployment; ``url`` is its ``REDIS_URL``."""

    primary: int
    replicas: list[int]
    sentinels: list[int]
    nodes: dict[int, Proc] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"redis+sentinel://{','.join(f'127.0.0.1:{p}' for p in self.sentinels)}/{MASTER}/0"

    def master_port(self) -> int | None:
        """The primary's port as the first sentinel that answers names it."""
        for port in self.sentinels:
            client = Redis(host="127.0.0.1", port=port, socket_timeout=0.5, socket_connect_timeout=0.5)
            try:
                addr = client.sentinel_get_master_addr_by_name(MASTER)
                return int(addr[1]) if addr else None
            except Exception:
                continue
            finally:
                client.close()
        return None

    def client(self, port: int) -> Redis:
        return Redis(host="127.0.0.1", port=port, socket_timeout=2, socket_connect_timeout=1)


def data_node(procs: Procs, tmp_path: Path, port: int, primary: int | None = None) -> Proc:
    """A redis-server with AOF (fsync always), replicating ``primary`` when given."""
    data = tmp_path / f"redis-{port}"
    data.mkdir(parents=True, exist_ok=True)
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(data)]
    argv += ["--appendonly", "yes", "--appendfsync", "always"]
    argv += ["--replicaof", "127.0.0.1", str(primary)] if primary else []
    return procs.start(f"redis-{port}", argv, {})


def sentinel_node(procs: Procs, tmp_path: Path, port: int, primary: int) -> Proc:
    """A sentinel watching ``primary`` (quorum 2), quick to call it down and to fail over."""
    conf = tmp_path / f"sentinel-{port}.conf"  # the sentinel rewrites it as it learns
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor {MASTER} 127.0.0.1 {primary} 2\n"
        f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n"
        f"sentinel failover-timeout {MASTER} {FAILOVER_TIMEOUT_MS}\n"
        f"sentinel parallel-syncs {MASTER} 2\n"
    )
    return procs.start(f"sentinel-{port}", ["redis-server", str(conf), "--sentinel"], {})


def deploy(procs: Procs, tmp_path: Path, replicas: int = 2) -> Deployment:
    """Start a primary, ``replicas`` replicas and three sentinels; return once every sentinel sees them all."""
    dep = Deployment(free_port(), [free_port() for _ in range(replicas)], [free_port() for _ in range(3)])
    dep.nodes[dep.primary] = data_node(procs, tmp_path, dep.primary)
    for port in dep.replicas:
        dep.nodes[port] = data_node(procs, tmp_path, port, dep.primary)
    for port in dep.sentinels:
        dep.nodes[port] = sentinel_node(procs, tmp_path, port, dep.primary)

    def ready() -> bool:
        try:
            for port in dep.sentinels:
                state = dep.client(port).sentinel_master(MASTER)
                if state["num-other-sentinels"] < 2 or state["num-slaves"] < replicas:
                    return False
            return int(dep.client(dep.primary).info("replication")["connected_slaves"]) == replicas
        except Exception:
            return False

    if wait_until(ready, 30, 0.2) is None:
        raise AssertionError("the sentinel deployment did not come up")
    return dep
