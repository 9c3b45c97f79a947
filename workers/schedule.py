"""When each media is fetched next: one sorted set, earliest time wins.

``igrelay:fetch:due`` maps ``ACCOUNT:MEDIA`` to the time its next fetch is due. A request only
ever moves that time earlier, so a burst of comments inside the debounce window makes one
fetch (the first sets the time, the rest fold into it), and a comment never pushes back an
earlier scheduled refresh. The dispatcher removes a member when it claims it, so a request
that arrives during a running fetch schedules exactly one more.
"""

from __future__ import annotations

from typing import Any

from config import contract

# Returns 1 when the fetch was scheduled or moved earlier, 0 when folded into a pending one. The trigger
# ``schedule`` is not stored: the claim reads a missing trigger as ``schedule``, and a million scheduled
# refreshes would otherwise hold a million hash fields.
_REQUEST_LUA = """
local cur = redis.call('ZSCORE', KEYS[1], ARGV[2])
if (not cur) or tonumber(cur) > tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
  if ARGV[3] == 'schedule' then
    redis.call('HDEL', KEYS[2], ARGV[2])
  else
    redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
  end
  return 1
end
return 0
"""


def request_fetch(redis: Any, account_id: str, media_id: str, trigger: str, due_at: float) -> Any:
    """Ask for a fetch of ``media_id`` no later than ``due_at`` (``redis`` may be a pipeline)."""
    member = contract.media_member(account_id, media_id)
    return redis.eval(_REQUEST_LUA, 2, contract.FETCH_DUE, contract.FETCH_TRIGGER, f"{due_at:.3f}", member, trigger)
