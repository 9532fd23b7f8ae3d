"""The inbox: filter, claim, accept, ordered reply and record, the same for every platform."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import pytest

from core.conversation import APOLOGY
from core.errors import StoreError
from core.generator import EchoGenerator, GenerationRequest, GenerationResult
from core.inbox import Incoming, Receipt, addressed
from core.memory import MemoryStore
from core.types import Message, Reply, ReplyKind, Role
from tests.factories import make_inbox, make_message, make_service


class Screen:
    """A renderer that records what it is shown: the core's side of every platform."""

    def __init__(self, name: str = "m-1", *, refuse: bool = False) -> None:
        self.name = name
        self.refuse = refuse
        self.text = ""
        self.final: Reply | None = None
        self.apology: str | None = None
        self.done = asyncio.Event()

    async def add(self, delta: str) -> None:
        self.text += delta

    async def finish(self, reply: Reply) -> str | None:
        if self.refuse:
            raise RuntimeError("the platform refused the text")
        self.final = reply
        self.done.set()
        return self.name

    async def fail(self, apology: str) -> None:
        self.apology = apology
        self.done.set()


class OutageStore(MemoryStore):
    """A memory store whose database goes down for the operations named in ``down``."""

    def __init__(self, *down: str) -> None:
        super().__init__()
        self.down = set(down)

    def claim_event(self, platform: str, event_id: str) -> bool:
        if "claim" in self.down:
            raise StoreError("down")
        return super().claim_event(platform, event_id)

    def append(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
        if "append" in self.down:
            raise StoreError("down")
        return super().append(*args, **kwargs)  # type: ignore[arg-type]


@dataclass(slots=True)
class SlowFirst(EchoGenerator):
    """The echo generator, taking its time over the first answer only."""

    delay: float = 0.2

    async def _run(self, request: GenerationRequest) -> AsyncIterator[str | GenerationResult]:
        slow = len(self.requests) == 1
        async for item in EchoGenerator._run(self, request):
            if slow:
                await asyncio.sleep(self.delay / 5)
            yield item


def group(text: str, **changes: object) -> Message:
    return replace(make_message(text, is_group=True), **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (make_message("hi"), True),
        (group("hi all"), False),
        (group("hi", mentions_bot=True), True),
        (group("and then?", reply_to_bot=True), True),
        (group("/explain@ParleyBot"), True),
    ],
)
def test_private_chats_are_answered_and_groups_when_addressed(
    message: Message, expected: bool
) -> None:
    assert addressed(message) is expected


async def test_a_message_is_stored_answered_and_its_answer_recorded() -> None:
    service, store, _ = make_service()
    inbox = make_inbox(service)
    screen = Screen("m-100")
    receipt = await inbox.receive(Incoming(make_message("one"), event_id="1"), lambda _: screen)
    assert receipt is Receipt.TAKEN
    await inbox.drain()
    assert screen.final is not None
    assert screen.final.kind is ReplyKind.ANSWER
    assert screen.text == "You said: one"
    # The platform message showing the answer is recorded: a reply to it names it.
    feedback = replace(make_message("/feedback bad It was three"), reply_to="m-100")
    await inbox.receive(Incoming(feedback, event_id="2"), lambda _: Screen("m-101"))
    await inbox.drain()
    assert screen.final.answer_id is not None
    [rating] = store.feedback_for(screen.final.answer_id)
    assert rating.correction == "It was three"


async def test_an_event_is_answered_once_per_platform() -> None:
    service, _, generator = make_service()
    inbox = make_inbox(service)
    message = make_message("only once")
    assert await inbox.receive(Incoming(message, event_id="42"), lambda _: Screen()) == "taken"
    again = await inbox.receive(Incoming(message, event_id="42"), lambda _: Screen())
    assert again is Receipt.IGNORED
    other = replace(message, platform="slack")
    assert await inbox.receive(Incoming(other, event_id="42"), lambda _: Screen()) == "taken"
    await inbox.drain()
    assert len(generator.requests) == 2


async def test_a_group_message_not_for_parley_is_neither_claimed_nor_stored() -> None:
    service, store, generator = make_service()
    inbox = make_inbox(service)
    message = group("lunch?")
    assert await inbox.receive(Incoming(message, event_id="7"), lambda _: Screen()) == "ignored"
    assert store.history(message.key, 10) == []
    assert store.claim_event("test", "7"), "an ignored event is not claimed"
    assert generator.requests == []


async def test_a_webhook_event_that_cannot_be_claimed_is_refused() -> None:
    store = OutageStore("claim")
    service, _, generator = make_service(store=store)
    inbox = make_inbox(service)
    receipt = await inbox.receive(Incoming(make_message("hello"), event_id="1"), lambda _: Screen())
    assert receipt is Receipt.RETRY
    assert generator.requests == []


async def test_a_webhook_event_that_cannot_be_stored_is_released_and_refused() -> None:
    store = OutageStore("append")
    service, _, generator = make_service(store=store)
    inbox = make_inbox(service)
    incoming = Incoming(make_message("hello"), event_id="1")
    assert await inbox.receive(incoming, lambda _: Screen()) is Receipt.RETRY
    # The platform delivers it again once the database is back: it is new, and answered.
    store.down.clear()
    screen = Screen()
    assert await inbox.receive(incoming, lambda _: screen) is Receipt.TAKEN
    await inbox.drain()
    assert screen.final is not None
    assert screen.final.kind is ReplyKind.ANSWER
    assert len(generator.requests) == 1


async def polled_while_down(operation: str) -> tuple[Screen, EchoGenerator]:
    """Take a polled message while the store's ``operation`` fails; wait for its reply."""
    service, _, generator = make_service(store=OutageStore(operation))
    inbox = make_inbox(service)
    screen = Screen()
    incoming = Incoming(make_message("hello"), event_id="1", refusable=False)
    assert await inbox.receive(incoming, lambda _: screen) is Receipt.TAKEN
    await inbox.drain()
    return screen, generator


async def test_a_polled_event_is_answered_even_when_it_cannot_be_claimed() -> None:
    screen, _ = await polled_while_down("claim")
    assert screen.final is not None
    assert screen.final.kind is ReplyKind.ANSWER


async def test_a_polled_event_that_cannot_be_stored_gets_an_apology() -> None:
    screen, generator = await polled_while_down("append")
    assert screen.apology == APOLOGY
    assert generator.requests == []


async def test_a_reply_the_platform_refuses_ends_in_an_apology() -> None:
    service, store, _ = make_service()
    inbox = make_inbox(service)
    screen = Screen(refuse=True)
    await inbox.receive(Incoming(make_message("hello")), lambda _: screen)
    await inbox.drain()
    assert screen.apology == APOLOGY
    message = make_message("hello")
    assert [m.role for m in store.history(message.key, 10)] == [Role.USER, Role.ASSISTANT]


async def test_the_platform_look_ups_run_only_for_messages_parley_answers() -> None:
    service, _, _ = make_service()
    inbox = make_inbox(service)
    looked_up: list[str] = []

    async def named(message: Message) -> Message:
        looked_up.append(message.text)
        return replace(message, user=replace(message.user, display_name="Ada"))

    await inbox.receive(Incoming(group("chatter"), complete=named), lambda _: Screen())
    screen = Screen()
    await inbox.receive(Incoming(make_message("hi"), complete=named), lambda _: screen)
    await inbox.drain()
    assert looked_up == ["hi"]
    assert screen.final is not None


@pytest.mark.parametrize("refusable", [True, False], ids=["webhook", "polled"])
async def test_replies_in_one_conversation_keep_the_order_of_the_messages(
    refusable: bool,
) -> None:
    service, _, _ = make_service(generator=SlowFirst())
    inbox = make_inbox(service)
    finished: list[str] = []

    class Noting(Screen):
        async def finish(self, reply: Reply) -> str | None:
            finished.append(reply.text)
            return await super().finish(reply)

    for text in ("first", "second"):
        incoming = Incoming(make_message(text), refusable=refusable)
        await inbox.receive(incoming, lambda _: Noting())
    await inbox.drain()
    assert finished == ["You said: first", "You said: second"]


async def test_close_cancels_what_does_not_finish_in_time() -> None:
    service, _, _ = make_service()
    inbox = make_inbox(service)
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    inbox.later(forever())
    await started.wait()
    await asyncio.wait_for(inbox.close(grace=0.05), 5)
    await inbox.drain()  # nothing left
