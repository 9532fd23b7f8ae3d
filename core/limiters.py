"""The limiters: counters, locks and bounded queues, in this process or shared through Redis.

:class:`Limiter` is the small interface that :class:`core.limits.Limits` builds on;
:class:`MemoryLimiter` serves the embedded deployment (one process) and
:class:`RedisLimiter` the scaled one, where every web process and worker shares the same
state. Every entry expires, so that nothing a dead process held stays held for long.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

__all__ = ["Limiter", "MemoryLimiter", "RedisLimiter"]


class Limiter(Protocol):
    """Counters with expiry, short locks and bounded queues, shared by all who use the same one."""

    def hit(self, key: str, limit: int, window_s: float, amount: int = 1) -> float:
        """Count ``amount`` on ``key`` if it is still under ``limit``; return 0.0.

        When the count has reached ``limit``, count nothing and return the seconds until
        the window (started by the key's first count) ends. ``amount=0`` only checks.
        """
        ...

    def charge(self, key: str, amount: int, window_s: float) -> None:
        """Add ``amount`` to ``key`` unconditionally (the window starts if it had none)."""
        ...

    def acquire(self, key: str, ttl_s: float, token: str | None = None) -> str | None:
        """Take the lock ``key`` for at most ``ttl_s``; a token to release it, or ``None``.

        ``token`` names the holder (a fresh one is made when it is ``None``); a holder that
        has the lock already gets it again, for ``ttl_s`` from now.
        """
        ...

    def release(self, key: str, token: str) -> None:
        """Release the lock if ``token`` still holds it."""
        ...

    def join(self, key: str, limit: int, ttl_s: float) -> str | None:
        """Put a ticket in the queue ``key`` if it holds fewer than ``limit``; its token.

        ``None`` when the queue is full. A ticket stays until :meth:`leave`, at most ``ttl_s``.
        """
        ...

    def leave(self, key: str, token: str) -> None:
        """Take the ticket ``token`` out of the queue ``key`` (nothing if it is not there)."""
        ...

    def delete(self, keys: Sequence[str]) -> int:
        """Remove counters, locks and queues; return how many existed."""
        ...


class MemoryLimiter:
    """The embedded deployment's limiter: dictionaries in this process, thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._values: dict[str, tuple[int | str, float]] = {}
        self._queues: dict[str, dict[str, float]] = {}

    def _live(self, key: str, now: float) -> tuple[int | str, float] | None:
        found = self._values.get(key)
        if found is not None and found[1] <= now:
            del self._values[key]
            return None
        return found

    def _tickets(self, key: str, now: float) -> dict[str, float]:
        tickets = {t: ends for t, ends in self._queues.get(key, {}).items() if ends > now}
        if tickets:
            self._queues[key] = tickets
        else:
            self._queues.pop(key, None)
        return tickets

    def hit(self, key: str, limit: int, window_s: float, amount: int = 1) -> float:
        with self._lock:
            now = self._clock()
            found = self._live(key, now)
            used, ends = (int(found[0]), found[1]) if found else (0, now + window_s)
            if used >= limit:
                return max(ends - now, 0.001)
            if amount:
                self._values[key] = (used + amount, ends)
            return 0.0

    def charge(self, key: str, amount: int, window_s: float) -> None:
        with self._lock:
            now = self._clock()
            found = self._live(key, now)
            used, ends = (int(found[0]), found[1]) if found else (0, now + window_s)
            self._values[key] = (used + amount, ends)

    def acquire(self, key: str, ttl_s: float, token: str | None = None) -> str | None:
        with self._lock:
            now = self._clock()
            found = self._live(key, now)
            if found is not None and (token is None or found[0] != token):
                return None
            token = token or secrets.token_hex(8)
            self._values[key] = (token, now + ttl_s)
            return token

    def release(self, key: str, token: str) -> None:
        with self._lock:
            found = self._values.get(key)
            if found is not None and found[0] == token:
                del self._values[key]

    def join(self, key: str, limit: int, ttl_s: float) -> str | None:
        with self._lock:
            now = self._clock()
            tickets = self._tickets(key, now)
            if len(tickets) >= limit:
                return None
            token = secrets.token_hex(8)
            self._queues[key] = {**tickets, token: now + ttl_s}
            return token

    def leave(self, key: str, token: str) -> None:
        with self._lock:
            tickets = self._queues.get(key, {})
            tickets.pop(token, None)
            if not tickets:
                self._queues.pop(key, None)

    def delete(self, keys: Sequence[str]) -> int:
        with self._lock:
            now = self._clock()
            found = 0
            for key in keys:
                if self._live(key, now) is not None:
                    del self._values[key]
                    found += 1
                if self._tickets(key, now):
                    del self._queues[key]
                    found += 1
            return found

    def keys(self) -> list[str]:
        """The live keys (for tests and /forget checks)."""
        with self._lock:
            now = self._clock()
            values = [k for k in list(self._values) if self._live(k, now) is not None]
            return values + [k for k in list(self._queues) if self._tickets(k, now)]


_HIT = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used >= tonumber(ARGV[1]) then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
    ttl = tonumber(ARGV[3])
  end
  return math.max(ttl, 1)
end
if tonumber(ARGV[2]) > 0 then
  redis.call('INCRBY', KEYS[1], ARGV[2])
  if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
end
return 0
"""

_CHARGE = """
redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
"""

_ACQUIRE = """
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# A queue is a sorted set of tickets scored by when each expires (Redis's own clock, so
# that the web processes' clocks need not agree); every ticket has the same lifetime.
_JOIN = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


class RedisLimiter:
    """The scaled deployment's limiter: atomic Lua scripts on a shared Redis.

    ``client`` is a synchronous ``redis.Redis``; every key gets ``prefix`` in front, so
    several deployments (or tests) can share one server.
    """

    def __init__(self, client: Any, prefix: str = "parley:limits") -> None:
        self._redis = client
        self.prefix = prefix
        self._hit = client.register_script(_HIT)
        self._charge = client.register_script(_CHARGE)
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)
        self._join = client.register_script(_JOIN)

    def _key(self, key: str) -> str:
        return f"{self.prefix}:{key}"

    def hit(self, key: str, limit: int, window_s: float, amount: int = 1) -> float:
        ms = int(self._hit(keys=[self._key(key)], args=[limit, amount, int(window_s * 1000)]))
        return ms / 1000.0

    def charge(self, key: str, amount: int, window_s: float) -> None:
        self._charge(keys=[self._key(key)], args=[amount, int(window_s * 1000)])

    def acquire(self, key: str, ttl_s: float, token: str | None = None) -> str | None:
        token = token or secrets.token_hex(8)
        ttl_ms = max(int(ttl_s * 1000), 1)
        taken = int(self._acquire(keys=[self._key(key)], args=[token, ttl_ms]))
        return token if taken else None

    def release(self, key: str, token: str) -> None:
        self._release(keys=[self._key(key)], args=[token])

    def join(self, key: str, limit: int, ttl_s: float) -> str | None:
        token = secrets.token_hex(8)
        ttl_ms = max(int(ttl_s * 1000), 1)
        joined = int(self._join(keys=[self._key(key)], args=[limit, ttl_ms, token]))
        return token if joined else None

    def leave(self, key: str, token: str) -> None:
        self._redis.zrem(self._key(key), token)

    def delete(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        return int(self._redis.delete(*(self._key(k) for k in keys)))
