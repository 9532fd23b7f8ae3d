"""The queue behind one answer at a time: the limiters' queues, the bound, waiting for a turn."""

from __future__ import annotations

import asyncio
import time

from core.limiters import Limiter, MemoryLimiter
from core.limits import LimitOptions, Limits, busy_text
from core.safety import Place, Safety
from tests.factories import make_message, make_user
from tests.test_limits import limiter  # in memory and on Redis, as the limiters' own tests

__all__ = ["limiter"]


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


def test_a_lock_may_be_held_under_the_holders_own_name_and_taken_again(
    limiter: Limiter,
) -> None:
    assert limiter.acquire("turn", 5, token="chat-1") == "chat-1"
    assert limiter.acquire("turn", 5, token="chat-2") is None
    assert limiter.acquire("turn", 5) is None
    assert limiter.acquire("turn", 5, token="chat-1") == "chat-1"  # its holder again
    limiter.release("turn", "chat-2")  # not the holder: nothing happens
    assert limiter.acquire("turn", 5, token="chat-2") is None
    limiter.release("turn", "chat-1")
    assert limiter.acquire("turn", 5, token="chat-2") == "chat-2"


def test_taking_a_lock_again_renews_its_time(limiter: Limiter) -> None:
    assert limiter.acquire("turn", 0.4, token="chat-1")
    time.sleep(0.25)
    assert limiter.acquire("turn", 0.4, token="chat-1")
    time.sleep(0.25)
    assert limiter.acquire("turn", 0.4, token="chat-2") is None  # still held: renewed
    time.sleep(0.2)
    assert limiter.acquire("turn", 0.4, token="chat-2") == "chat-2"


# ------------------------------------------------------------------------- the policy


def _limits(limiter: Limiter | None = None, **options: object) -> Limits:
    values: dict[str, object] = {"one_at_a_time": True, "max_queued": 2, "busy_ttl_s": 30.0}
    return Limits(limiter or MemoryLimiter(), LimitOptions(**{**values, **options}))  # type: ignore[arg-type]


PRIVATE = make_message("x").key
GROUP = make_message("x", chat="group", is_group=True).key


def test_one_in_progress_and_max_queued_waiting_then_a_refusal(limiter: Limiter) -> None:
    limits = _limits(limiter)
    ada, bob = make_user("ada"), make_user("bob")
    tickets = [limits.queue(ada, PRIVATE) for _ in range(2)] + [limits.queue(ada, GROUP)]
    assert all(tickets)
    assert limits.queue(ada, PRIVATE) is None  # in any chat of hers
    assert limits.queue(ada, GROUP) is None
    assert limits.queue(bob, PRIVATE) is not None  # every person has a queue of their own
    first, second, other_chat = (t or "" for t in tickets)
    assert limits.take_turn(ada, first)
    assert not limits.take_turn(ada, other_chat)  # one answer of a person at a time
    assert limits.take_turn(ada, second)  # the same chat's: its order decides (see Safety)
    assert limits.take_turn(bob, limits.queue(bob, GROUP) or "")
    limits.end_answer(ada, first, keep_turn=True)  # the place is free, the chat keeps the turn
    assert not limits.take_turn(ada, other_chat)
    assert limits.queue(ada, GROUP) is not None
    assert limits.queue(ada, GROUP) is None
    limits.end_answer(ada, second)  # now the turn is free as well
    assert limits.take_turn(ada, other_chat)


def test_a_queued_place_lasts_for_the_answers_before_it_and_its_own() -> None:
    options = LimitOptions(one_at_a_time=True, max_queued=5, busy_ttl_s=60.0)
    assert options.queue_ttl_s == 360.0
    clock = [0.0]
    limits = Limits(MemoryLimiter(clock=lambda: clock[0]), options)
    ada = make_user("ada")
    assert all(limits.queue(ada, PRIVATE) for _ in range(6))
    assert limits.queue(ada, PRIVATE) is None
    clock[0] = 361.0  # their holders died: the places went with them
    assert limits.queue(ada, PRIVATE) is not None


def test_with_one_at_a_time_off_nothing_is_queued_or_held() -> None:
    limiter = MemoryLimiter()
    limits = _limits(limiter, one_at_a_time=False, max_queued=0)
    ada = make_user("ada")
    assert [limits.queue(ada, PRIVATE) for _ in range(10)] == [""] * 10
    assert limits.take_turn(ada, "")
    assert limiter.keys() == []


def test_forgetting_a_person_clears_their_queue_and_turn() -> None:
    limiter = MemoryLimiter()
    limits = _limits(limiter)
    ada = make_user("ada")
    ticket = limits.queue(ada, PRIVATE)
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


class Line:
    """A conversation's jobs as the store sees them: the ids still owed an answer."""

    def __init__(self, *owed: int) -> None:
        self.owed = set(owed)

    def head(self) -> int | None:
        return min(self.owed, default=None)

    def place(self, message_id: int, *, private: bool = True) -> Place:
        return Place(message_id, self.head, private=private)


async def test_an_answer_waits_for_its_conversation_then_for_the_persons_turn() -> None:
    safety = Safety(limits=_limits(), turn_poll_s=0.01)
    private, group = make_message("hi"), make_message("hi", chat="group", is_group=True)
    chat, other = Line(1, 2), Line(3)
    first = (await safety.screen(private, "hi")).busy
    second = (await safety.screen(private, "again")).busy
    elsewhere = (await safety.screen(group, "hi")).busy
    assert first
    assert second
    assert elsewhere
    await safety.take_turn(private.user, first, chat.place(1))
    waiting = asyncio.create_task(safety.take_turn(private.user, second, chat.place(2)))
    in_group = asyncio.create_task(safety.take_turn(group.user, elsewhere, other.place(3)))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # message 1 of its chat is not answered yet
    assert not in_group.done()  # the person's answer in the other chat is in progress
    chat.owed.discard(1)
    await safety.finish(private.user, first, chat.place(1))  # message 2 is next: turn kept
    await asyncio.wait_for(waiting, 2)
    await asyncio.sleep(0.05)
    assert not in_group.done()
    chat.owed.discard(2)
    await safety.finish(private.user, second, chat.place(2))  # nothing follows: turn free
    await asyncio.wait_for(in_group, 2)
    # One in progress, two may wait: two more fit, a third is refused.
    assert (await safety.screen(private, "one more")).busy
    assert (await safety.screen(private, "two more")).busy
    full = await safety.screen(private, "three more")
    assert full.refusal == busy_text(2)
    assert full.busy is None


async def test_a_group_chat_passes_the_turn_on_at_once() -> None:
    """In a group the next message may be someone else's: the person's turn is not kept."""
    limits = _limits()
    safety = Safety(limits=limits, turn_poll_s=0.01)
    group, private = make_message("hi", chat="g", is_group=True), make_message("hi")
    line = Line(1, 2)
    held = (await safety.screen(group, "hi")).busy
    await safety.take_turn(group.user, held, line.place(1, private=False))
    line.owed.discard(1)
    await safety.finish(group.user, held, line.place(1, private=False))
    mine = (await safety.screen(private, "hi")).busy
    await asyncio.wait_for(safety.take_turn(private.user, mine, Line(3).place(3)), 1)


async def test_a_turn_is_never_held_by_an_answer_that_must_wait_for_its_conversation() -> None:
    """Two chats of one person, one of them with an earlier message owed: no circle."""
    limits = _limits()
    safety = Safety(limits=limits, turn_poll_s=0.01)
    group, private = make_message("hi", chat="g", is_group=True), make_message("hi")
    late = (await safety.screen(group, "hi")).busy
    ready = (await safety.screen(private, "hi")).busy
    late_turn = asyncio.create_task(safety.take_turn(group.user, late, Line(1, 2).place(2)))
    await asyncio.sleep(0.05)
    await asyncio.wait_for(safety.take_turn(private.user, ready, Line(3).place(3)), 1)
    late_turn.cancel()


class BrokenLimiter(MemoryLimiter):
    """A limiter whose store went away after the message was queued."""

    def acquire(self, key: str, ttl_s: float, token: str | None = None) -> str | None:
        raise ConnectionError("Redis is down")


async def test_a_broken_limiter_costs_no_answer() -> None:
    safety = Safety(limits=_limits(BrokenLimiter()), turn_poll_s=0.01)
    message = make_message("hi")
    screening = await safety.screen(message, "hi")
    await asyncio.wait_for(safety.take_turn(message.user, screening.busy, Line(1).place(1)), 1)
