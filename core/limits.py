"""Rate limits, daily token quotas and one answer at a time, per person and per chat.

One small interface, :class:`Limiter`, with two implementations chosen by the wiring:
:class:`MemoryLimiter` for the embedded deployment (one process) and
:class:`RedisLimiter` for the scaled one, where every web process and worker shares the
same counters. :class:`Limits` is the policy on top::

    limits = Limits(MemoryLimiter(), LimitOptions(person_per_minute=20))
    refusal = limits.admit(message)            # None, or a Refusal with the wait time
    refusal = limits.within_quota(message)     # the same, for the daily token quotas
    token = limits.start_answer(message.user)  # None: an answer for them is in progress
    limits.charge(user, key, tokens)           # after an answer: count its model tokens
    limits.end_answer(message.user, token)

Windows are fixed (a minute, a day) and start with their first hit; a refusal says how long
until the window ends. Nothing here holds message text: keys name people and chats only.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from core.metrics import LIMITS_HIT
from core.types import ConversationKey, Message, UserRef

__all__ = [
    "LimitOptions",
    "Limiter",
    "Limits",
    "MemoryLimiter",
    "RedisLimiter",
    "Refusal",
    "describe_wait",
]

MINUTE = 60.0
DAY = 86_400.0


class Limiter(Protocol):
    """Counters with expiry and short locks, shared by everything that uses the same one."""

    def hit(self, key: str, limit: int, window_s: float, amount: int = 1) -> float:
        """Count ``amount`` on ``key`` if it is still under ``limit``; return 0.0.

        When the count has reached ``limit``, count nothing and return the seconds until
        the window (started by the key's first count) ends. ``amount=0`` only checks.
        """
        ...

    def charge(self, key: str, amount: int, window_s: float) -> None:
        """Add ``amount`` to ``key`` unconditionally (the window starts if it had none)."""
        ...

    def acquire(self, key: str, ttl_s: float) -> str | None:
        """Take the lock ``key`` for at most ``ttl_s``; a token to release it, or ``None``."""
        ...

    def release(self, key: str, token: str) -> None:
        """Release the lock if ``token`` still holds it."""
        ...

    def delete(self, keys: Sequence[str]) -> int:
        """Remove counters and locks; return how many existed."""
        ...


class MemoryLimiter:
    """The embedded deployment's limiter: dictionaries in this process, thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._values: dict[str, tuple[int | str, float]] = {}

    def _live(self, key: str, now: float) -> tuple[int | str, float] | None:
        found = self._values.get(key)
        if found is not None and found[1] <= now:
            del self._values[key]
            return None
        return found

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

    def acquire(self, key: str, ttl_s: float) -> str | None:
        with self._lock:
            now = self._clock()
            if self._live(key, now) is not None:
                return None
            token = secrets.token_hex(8)
            self._values[key] = (token, now + ttl_s)
            return token

    def release(self, key: str, token: str) -> None:
        with self._lock:
            found = self._values.get(key)
            if found is not None and found[0] == token:
                del self._values[key]

    def delete(self, keys: Sequence[str]) -> int:
        with self._lock:
            now = self._clock()
            return sum(
                self._live(k, now) is not None and self._values.pop(k) is not None for k in keys
            )

    def keys(self) -> list[str]:
        """The live keys (for tests and /forget checks)."""
        with self._lock:
            now = self._clock()
            return [k for k in list(self._values) if self._live(k, now) is not None]


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

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
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
        self._release = client.register_script(_RELEASE)

    def _key(self, key: str) -> str:
        return f"{self.prefix}:{key}"

    def hit(self, key: str, limit: int, window_s: float, amount: int = 1) -> float:
        ms = int(self._hit(keys=[self._key(key)], args=[limit, amount, int(window_s * 1000)]))
        return ms / 1000.0

    def charge(self, key: str, amount: int, window_s: float) -> None:
        self._charge(keys=[self._key(key)], args=[amount, int(window_s * 1000)])

    def acquire(self, key: str, ttl_s: float) -> str | None:
        token = secrets.token_hex(8)
        taken = self._redis.set(self._key(key), token, nx=True, px=max(int(ttl_s * 1000), 1))
        return token if taken else None

    def release(self, key: str, token: str) -> None:
        self._release(keys=[self._key(key)], args=[token])

    def delete(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        return int(self._redis.delete(*(self._key(k) for k in keys)))


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitOptions:
    """How much each person and chat may ask; 0 turns a limit off."""

    person_per_minute: int = 0
    chat_per_minute: int = 0
    person_tokens_per_day: int = 0
    chat_tokens_per_day: int = 0
    one_at_a_time: bool = False
    busy_ttl_s: float = 300.0
    """How long an answer holds its person's lock at most (if its process dies meanwhile)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """A message refused by a limit: which one, how long to wait, and what to say."""

    limit: str
    wait_s: float
    text: str


def describe_wait(seconds: float) -> str:
    """A wait as people say it: "40 seconds", "3 minutes", "5 hours"."""
    seconds = max(1, round(seconds))
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} minutes"
    return f"{round(minutes / 60)} hours"


def _id(*parts: str | None) -> str:
    """An unambiguous key part (ids may contain ':' or anything else)."""
    return json.dumps(list(parts), separators=(",", ":"))


class Limits:
    """Parley's limits over a :class:`Limiter`."""

    def __init__(self, limiter: Limiter, options: LimitOptions) -> None:
        self.limiter = limiter
        self.options = options

    @staticmethod
    def person_keys(user: UserRef) -> list[str]:
        """Every key that names the person (what /forget removes)."""
        who = _id(user.platform, user.id)
        return [f"msg:user:{who}", f"tok:user:{who}", f"busy:{who}"]

    @staticmethod
    def chat_keys(key: ConversationKey) -> list[str]:
        """The keys of one chat's counters."""
        chat = _id(key.platform, key.workspace, key.chat)
        return [f"msg:chat:{chat}", f"tok:chat:{chat}"]

    def admit(self, message: Message) -> Refusal | None:
        """Count the message against the person's and the chat's rate limits."""
        person = self.person_keys(message.user)[0]
        chat = self.chat_keys(message.key)[0]
        return self._check(
            [
                ("person_rate", person, self.options.person_per_minute, MINUTE, 1, "You are"),
                ("chat_rate", chat, self.options.chat_per_minute, MINUTE, 1, "This chat is"),
            ]
        )

    def within_quota(self, message: Message) -> Refusal | None:
        """Check (without counting) that the person and the chat have tokens left today."""
        person = self.person_keys(message.user)[1]
        chat = self.chat_keys(message.key)[1]
        return self._check(
            [
                ("person_quota", person, self.options.person_tokens_per_day, DAY, 0, "You have"),
                ("chat_quota", chat, self.options.chat_tokens_per_day, DAY, 0, "This chat has"),
            ]
        )

    def _check(self, checks: list[tuple[str, str, int, float, int, str]]) -> Refusal | None:
        for name, key, limit, window, amount, who in checks:
            if limit <= 0:
                continue
            wait = self.limiter.hit(key, limit, window, amount)
            if wait > 0:
                LIMITS_HIT.labels(name).inc()
                return Refusal(name, wait, _refusal_text(name, who, limit, wait))
        return None

    def start_answer(self, user: UserRef) -> str | None:
        """Hold the person's one answer in progress: a token, or ``None`` when one runs.

        With one-at-a-time off, always a token (that holds nothing).
        """
        if not self.options.one_at_a_time:
            return ""
        token = self.limiter.acquire(self.person_keys(user)[2], self.options.busy_ttl_s)
        if token is None:
            LIMITS_HIT.labels("busy").inc()
        return token

    def end_answer(self, user: UserRef, token: str) -> None:
        """Release what :meth:`start_answer` took."""
        if token:
            self.limiter.release(self.person_keys(user)[2], token)

    def charge(self, user: UserRef, key: ConversationKey, tokens: int) -> None:
        """Count an answer's model tokens against the person's and the chat's quotas."""
        if tokens <= 0:
            return
        if self.options.person_tokens_per_day > 0:
            self.limiter.charge(self.person_keys(user)[1], tokens, DAY)
        if self.options.chat_tokens_per_day > 0:
            self.limiter.charge(self.chat_keys(key)[1], tokens, DAY)

    def forget(
        self, identities: Sequence[UserRef], conversations: Sequence[ConversationKey] = ()
    ) -> int:
        """Remove every counter and lock of these people, and of the chats they wrote in."""
        keys = [k for user in identities for k in self.person_keys(user)]
        keys += [k for key in dict.fromkeys(conversations) for k in self.chat_keys(key)]
        return self.limiter.delete(keys)


BUSY_TEXT = (
    "I'm still answering your previous message. Please wait for that answer, then send "
    "this one again."
)


def _refusal_text(name: str, who: str, limit: int, wait: float) -> str:
    when = describe_wait(wait)
    if name.endswith("rate"):
        return (
            f"{who} sending messages faster than I can take them (at most {limit} a minute). "
            f"Please wait {when} and send it again."
        )
    return (
        f"{who} used up today's share of my time ({limit:,} tokens a day). "
        f"Please try again in {when}."
    )
