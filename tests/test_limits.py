"""The limiters: one contract, in memory and on a real Redis shared by several processes."""

from __future__ import annotations

import multiprocessing
import secrets
import time
from collections.abc import Iterator

import pytest
import redis

from core.limits import Limiter, LimitOptions, Limits, MemoryLimiter, RedisLimiter
from tests.conftest import REDIS_URL
from tests.factories import make_message, make_user


@pytest.fixture(params=["memory", "redis"])
def limiter(request: pytest.FixtureRequest) -> Iterator[Limiter]:
    if request.param == "memory":
        yield MemoryLimiter()
        return
    client = request.getfixturevalue("redis_client")
    prefix = f"parley-test:{secrets.token_hex(4)}"
    yield RedisLimiter(client, prefix=prefix)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)


def test_a_window_counts_up_to_its_limit_then_says_how_long_to_wait(limiter: Limiter) -> None:
    assert [limiter.hit("k", 3, 0.5) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.hit("k", 3, 0.5)
    assert 0 < wait <= 0.5
    assert limiter.hit("other", 3, 0.5) == 0.0
    time.sleep(wait + 0.05)
    assert limiter.hit("k", 3, 0.5) == 0.0


def test_charges_fill_a_quota_that_checks_without_counting(limiter: Limiter) -> None:
    assert limiter.hit("q", 100, 60, amount=0) == 0.0
    limiter.charge("q", 60, 60)
    assert limiter.hit("q", 100, 60, amount=0) == 0.0
    limiter.charge("q", 60, 60)
    assert limiter.hit("q", 100, 60, amount=0) > 59


def test_a_lock_is_held_once_until_released_or_expired(limiter: Limiter) -> None:
    token = limiter.acquire("busy", 0.3)
    assert token is not None
    assert limiter.acquire("busy", 0.3) is None
    limiter.release("busy", "not-the-token")
    assert limiter.acquire("busy", 0.3) is None
    limiter.release("busy", token)
    again = limiter.acquire("busy", 0.3)
    assert again is not None
    time.sleep(0.35)
    assert limiter.acquire("busy", 0.3) is not None
    assert limiter.delete(["busy", "missing"]) == 1


def _hammer(prefix: str, kind: str, tries: int, start: float, process: str) -> int:
    """In a separate process: try ``tries`` messages (places in the queue, turns) as one person.

    Each message is in its own chat, and no chat is shared with the other process: the turn
    passes between messages of one chat, so a shared chat would hold it in both processes.
    """
    client = redis.Redis.from_url(REDIS_URL)
    limits = Limits(
        RedisLimiter(client, prefix=prefix),
        LimitOptions(person_per_minute=25, one_at_a_time=True, max_queued=3, busy_ttl_s=30),
    )
    message = make_message("hi", user=make_user("shared-person", platform="telegram"))
    while time.time() < start:
        time.sleep(0.001)
    if kind == "rate":
        return sum(limits.admit(message) is None for _ in range(tries))
    chats = [make_message("hi", chat=f"chat-{process}-{n}").key for n in range(tries)]
    tickets = [t for t in (limits.queue(message.user, chat) for chat in chats) if t]
    if kind == "queue":
        return len(tickets)
    return sum(limits.take_turn(message.user, t) for t in tickets)


@pytest.mark.parametrize("kind", ["rate", "queue", "turn"])
def test_two_processes_share_the_limits_through_redis(redis_client: redis.Redis, kind: str) -> None:
    prefix = f"parley-test:{secrets.token_hex(4)}"
    start = time.time() + 1.5  # both processes are up and go at once
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        counts = pool.starmap(_hammer, [(prefix, kind, 40, start, p) for p in ("a", "b")])
    if kind == "rate":
        assert sum(counts) == 25, counts  # of 80 tries, exactly the limit got through
    elif kind == "queue":
        assert sum(counts) == 4, counts  # one in progress and three waiting, whoever asked
    else:
        assert sum(counts) == 1, counts  # one answer in progress, whoever asked
    for key in redis_client.scan_iter(f"{prefix}:*"):
        redis_client.delete(key)
