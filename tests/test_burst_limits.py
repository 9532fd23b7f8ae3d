"""The queue behind one answer at a time: the limiters' queues, the bound, waiting for a turn."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator

import pytest

from core.limiters import Limiter, MemoryLimiter, RedisLimiter
from core.limits import LimitOptions, Limits, busy_text
from core.safety import Safety
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


# ------------------------------------------------------------------------- the limiters


def test_a_queue_takes_tickets_up_to_its_limit_until_they_leave_or_expire(
    limiter: Limiter,
) -> None:
    first, second = limiter.join("q", 2, 0.4), limiter.join("q", 2, 0.4)
    assert first is not None
    assert second is not None
    assert first != second
    assert limiter.join("q", 2, 0.4) is None
    assert limiter.join("other", 2, 0.4) is not None  # queues are apart
    limiter.leave("q", "not-a-ticket")
    assert limiter.join("q", 2, 0.4) is None
    limiter.leave("q", first)
    assert limiter.join("q", 2, 0.4) is not None
    assert limiter.join("q", 2, 0.4) is None
    time.sleep(0.45)  # a ticket whose holder died goes by itself
    assert limiter.join("q", 2, 0.4) is not None
    assert limiter.delete(["q", "missing"]) == 1
    assert limiter.join("q", 1, 0.4) is not None


def test_a_lock_may_be_held_under_the_holders_own_token(limiter: Limiter) -> None:
    assert limiter.acquire("turn", 5, token="ticket-1") == "ticket-1"
    assert limiter.acquire("turn", 5, token="ticket-2") is None
    limiter.release("turn", "ticket-2")  # not the holder: nothing happens
    assert limiter.acquire("turn", 5, token="ticket-2") is None
    limiter.release("turn", "ticket-1")
    assert limiter.acquire("turn", 5, token="ticket-2") == "ticket-2"


# ------------------------------------------------------------------------- the policy


def _limits(limiter: Limiter | None = None, **options: object) -> Limits:
    values: dict[str, object] = {"one_at_a_time": True, "max_queued": 2, "busy_ttl_s": 30.0}
    return Limits(limiter or MemoryLimiter(), LimitOptions(**{**values, **options}))  # type: ignore[arg-type]


def test_one_in_progress_and_max_queued_waiting_then_a_refusal(limiter: Limiter) -> None:
    limits = _limits(limiter)
    ada, bob = make_user("ada"), make_user("bob")
    tickets = [limits.queue(ada) for _ in range(4)]
    assert [t is not None for t in tickets] == [True, True, True, False]
    assert limits.queue(bob) is not None  # every person has a queue of their own
    first, second, third = (t or "" for t in tickets[:3])
    assert limits.take_turn(ada, first)
    assert not limits.take_turn(ada, second)  # one answer of a person at a time
    assert limits.take_turn(bob, limits.queue(bob) or "")
    limits.end_answer(ada, first)  # the turn and the place are free again
    assert limits.take_turn(ada, second)
    assert not limits.take_turn(ada, third)
    assert limits.queue(ada) is not None
    assert limits.queue(ada) is None


def test_a_queued_place_lasts_for_the_answers_before_it_and_its_own() -> None:
    options = LimitOptions(one_at_a_time=True, max_queued=5, busy_ttl_s=60.0)
    assert options.queue_ttl_s == 360.0
    clock = [0.0]
    limits = Limits(MemoryLimiter(clock=lambda: clock[0]), options)
    ada = make_user("ada")
    assert all(limits.queue(ada) for _ in range(6))
    assert limits.queue(ada) is None
    clock[0] = 361.0  # their holders died: the places went with them
    assert limits.queue(ada) is not None


def test_with_one_at_a_time_off_nothing_is_queued_or_held() -> None:
    limits = _limits(one_at_a_time=False, max_queued=0)
    ada = make_user("ada")
    assert [limits.queue(ada) for _ in range(10)] == [""] * 10
    assert limits.take_turn(ada, "")
    assert isinstance(limits.limiter, MemoryLimiter)
    assert limits.limiter.keys() == []


def test_forgetting_a_person_clears_their_queue_and_turn() -> None:
    limiter = MemoryLimiter()
    limits = _limits(limiter)
    ada = make_user("ada")
    ticket = limits.queue(ada)
    assert ticket
    assert limits.take_turn(ada, ticket)
    assert limits.forget([ada]) == 2
    assert limiter.keys() == []


def test_the_refusal_says_what_is_going_on_and_when_to_send_again() -> None:
    assert busy_text(5) == (
        "I'm still answering your earlier messages, and 5 more messages of yours are waiting, "
        "as many as I keep. Please send this one again once my next answer to you has arrived."
    )
    assert "1 more message of yours is waiting" in busy_text(1)
    assert busy_text(0).startswith("I'm still answering your previous message.")
    assert "once that answer has arrived" in busy_text(0)
    assert _limits(max_queued=3).busy_text == busy_text(3)


# --------------------------------------------------------------------- waiting for a turn


async def test_an_answer_waits_for_the_persons_turn_and_for_its_conversation() -> None:
    limits = _limits()
    safety = Safety(limits=limits, turn_poll_s=0.01)
    message = make_message("hi")
    held = (await safety.screen(message, "hi")).busy
    waiting = (await safety.screen(message, "again")).busy
    assert held
    assert waiting
    await safety.take_turn(message.user, held, lambda: True)
    first_in_line = [False]
    turn = asyncio.create_task(safety.take_turn(message.user, waiting, lambda: first_in_line[0]))
    await asyncio.sleep(0.05)
    assert not turn.done()  # the person's other answer is in progress
    await safety.finish(message.user, held)
    await asyncio.sleep(0.05)
    assert not turn.done()  # and an earlier message of its conversation is not answered yet
    first_in_line[0] = True
    await asyncio.wait_for(turn, 2)
    # One in progress, two may wait: two more fit, a third is refused.
    assert (await safety.screen(message, "one more")).busy
    assert (await safety.screen(message, "two more")).busy
    full = await safety.screen(message, "three more")
    assert full.refusal == busy_text(2)
    assert full.busy is None


async def test_a_turn_is_never_held_by_an_answer_that_must_wait_for_its_conversation() -> None:
    """Two chats of one person, each with an answer not yet first in line: no circle."""
    limits = _limits()
    safety = Safety(limits=limits, turn_poll_s=0.01)
    ada = make_user("ada")
    late = await asyncio.to_thread(limits.queue, ada)
    ready = await asyncio.to_thread(limits.queue, ada)
    assert late
    assert ready
    late_turn = asyncio.create_task(safety.take_turn(ada, late, lambda: False))
    await asyncio.sleep(0.05)
    await asyncio.wait_for(safety.take_turn(ada, ready, lambda: True), 1)  # not blocked by it
    late_turn.cancel()


class BrokenLimiter(MemoryLimiter):
    """A limiter whose store went away after the message was queued."""

    def acquire(self, key: str, ttl_s: float, token: str | None = None) -> str | None:
        raise ConnectionError("Redis is down")


async def test_a_broken_limiter_costs_no_answer() -> None:
    safety = Safety(limits=_limits(BrokenLimiter()), turn_poll_s=0.01)
    message = make_message("hi")
    screening = await safety.screen(message, "hi")
    await asyncio.wait_for(safety.take_turn(message.user, screening.busy, lambda: True), 1)
