"""``redis://host:port/db?stream=NAME``: ``XADD`` each record to a Redis stream, once per record id.

A Lua script adds each record only if its id is new in the companion sorted set
``contract.stream_ids(NAME)`` (member = record id, score = when added; entries older than
``dedupe_days`` (15) are pruned), so the check and the ``XADD`` are one atomic step and a
redelivered batch adds nothing twice. Entry fields: ``id``, ``kind``, ``record`` (JSON).
Options: ``stream`` (instead of the query), ``maxlen`` (approximate trim, default none).
Failure policy: raise (an unreachable Redis is retried); errors never carry the URL.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis import Redis, RedisError

from config import contract
from config.settings import ConfigError, Settings, redact_url
from workers.sinks import Record, Sink, SinkError

DAY = 86400
SCRIPT = """
local t = redis.call('TYPE', KEYS[1]).ok
if t ~= 'none' and t ~= 'stream' then return redis.error_reply('WRONGTYPE the target key is not a stream') end
local now, ttl, maxlen = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl)
local added = 0
for i = 4, #ARGV, 3 do
  if redis.call('ZADD', KEYS[2], 'NX', now, ARGV[i]) == 1 then
    if maxlen > 0 then
      redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', 'id', ARGV[i], 'kind', ARGV[i+1], 'record', ARGV[i+2])
    else
      redis.call('XADD', KEYS[1], '*', 'id', ARGV[i], 'kind', ARGV[i+1], 'record', ARGV[i+2])
    end
    added = added + 1
  end
end
redis.call('EXPIRE', KEYS[2], ttl)
return added
"""


def split_url(url: str) -> tuple[str, str | None]:
    """The Redis URL without igrelay's ``stream`` parameter, and that parameter."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    stream = next((v for k, v in query if k == "stream"), None)
    rest = urlencode([(k, v) for k, v in query if k != "stream"])
    return urlunsplit(parts._replace(query=rest)), stream


class StreamSink(Sink):
    """Appends records to a Redis stream."""

    schemes = ("redis", "rediss")
    idempotent = True

    def __init__(self, url: str, options: Mapping[str, Any], settings: Settings) -> None:
        super().__init__(url, options, settings)
        url, stream = split_url(self.url)
        self.stream = str(self.options.get("stream") or stream or "")
        if not self.stream:
            raise ConfigError("IGRELAY_SINKS: a redis:// sink needs ?stream=NAME")
        self.ids_key = contract.stream_ids(self.stream)
        self.ttl = int(float(self.options.get("dedupe_days", 15)) * DAY)
        self.maxlen = int(self.options.get("maxlen", 0))
        self.client = Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
        self.script = self.client.register_script(SCRIPT)

    def send(self, records: Sequence[Record]) -> None:
        args: list[str | int] = [int(time.time()), self.ttl, self.maxlen]
        for r in records:
            args += [str(r["id"]), str(r.get("kind", "")), json.dumps(r, ensure_ascii=False, default=str)]
        try:
            self.script(keys=[self.stream, self.ids_key], args=args)
        except RedisError as exc:
            raise SinkError(f"redis stream sink: {type(exc).__name__}") from None

    def close(self) -> None:
        self.client.close()

    @classmethod
    def redact(cls, url: str) -> str:
        """Password and other query parameters hidden; the stream name kept."""
        rest, stream = split_url(url)
        return redact_url(rest) + (f"?stream={stream}" if stream else "")
