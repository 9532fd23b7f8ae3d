"""Bursts through the real Telegram and Slack adapters: every message answered once, in order.

People type in bursts ("hi", "I have a question", the question), and the Telegram app
splits a long message into several. A message that arrives while the person's previous
one is being answered waits its turn in a queue per person (one answer at a time, in all
their chats together); only one beyond ``max_queued`` waiting is refused, with a note on
when to send it again. The model here is the echo generator behind a gate, so that a
burst surely arrives while the first answer is still in progress.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from bots.slack import build_slack
from bots.telegram import SECRET_HEADER, WEBHOOK_PATH
from core.conversation import ConversationService
from core.generator import EchoGenerator, GenerationRequest, GenerationResult
from core.limits import LimitOptions, Limits, MemoryLimiter, busy_text
from core.safety import Safety
from core.store import Store
from core.types import ConversationKey, Role
from tests.factories import make_inbox, make_service
from tests.fakes.slack import TEAM, FakeSlack, SlackSender, dm
from tests.fakes.telegram import ADA, GROUP, FakeTelegram, group_message, private_message
from tests.slack_fixtures import SECRET as SLACK_SECRET
from tests.slack_fixtures import settings_for
from tests.telegram_fixtures import SECRET, WEBHOOK_URL, history, running

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

_WHO = re.compile(r"\b(ada|p\d+)\b")


@dataclass(slots=True)
class GatedGenerator(EchoGenerator):
    """The echo generator, holding every answer until ``go``; it counts answers in progress.

    Each message names its person ("ada", "p3"), so that answers in progress are counted
    per person.
    """

    go: asyncio.Event = field(default_factory=asyncio.Event)
    running: Counter[str] = field(default_factory=Counter)
    peak: Counter[str] = field(default_factory=Counter)
    started: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def _run(self, request: GenerationRequest) -> AsyncIterator[str | GenerationResult]:
        asked = next(t.content for t in reversed(request.turns) if t.role is Role.USER)
        who = _WHO.findall(asked)[0]
        self.running[who] += 1
        self.peak[who] = max(self.peak[who], self.running[who])
        async with self.started:
            self.started.notify_all()
        try:
            await self.go.wait()
            async for item in EchoGenerator._run(self, request):
                yield item
        finally:
            self.running[who] -= 1

    @property
    def in_progress(self) -> int:
        return sum(self.running.values())

    async def until_in_progress(self, count: int, within: float = 20.0) -> None:
        """Wait until ``count`` answers are in progress (held at the gate)."""
        async with self.started:
            await asyncio.wait_for(self.started.wait_for(lambda: self.in_progress == count), within)


def _service(max_queued: int = 5) -> tuple[ConversationService, Store, GatedGenerator]:
    """The embedded deployment's service: one answer at a time, a queue of ``max_queued``."""
    generator = GatedGenerator()
    limits = Limits(MemoryLimiter(), LimitOptions(one_at_a_time=True, max_queued=max_queued))
    service, store, _ = make_service(generator=generator, safety=Safety(limits=limits))
    return service, store, generator


@asynccontextmanager
async def _webhook(
    telegram: FakeTelegram, service: ConversationService
) -> AsyncIterator[Callable[[dict[str, Any]], Any]]:
    """The adapter in webhook mode; yields a function that posts one update, as Telegram does."""
    async with running(telegram, service, webhook_url=WEBHOOK_URL, webhook_secret=SECRET) as bot:
        transport = httpx.ASGITransport(app=Starlette(routes=bot.routes()))
        async with httpx.AsyncClient(transport=transport, base_url="http://web") as client:

            async def post(update: dict[str, Any]) -> None:
                response = await client.post(
                    WEBHOOK_PATH, json=update, headers={SECRET_HEADER: SECRET}
                )
                assert response.status_code == 200

            yield post


def _person(n: int) -> dict[str, Any]:
    return {"id": 5000 + n, "is_bot": False, "first_name": f"Person{n}"}


BURST = ["hello there", "I have a question", "what is the capital of France?"]


@pytest.mark.parametrize("mode", ["webhook", "polling"])
async def test_a_burst_of_three_gets_three_answers_in_order(
    telegram: FakeTelegram, mode: str
) -> None:
    service, store, generator = _service()
    chat = ADA["id"]
    texts = [f"ada {text}" for text in BURST]
    if mode == "webhook":
        async with _webhook(telegram, service) as post:
            for text in texts:
                await post(private_message(text))
                await asyncio.sleep(0.4)  # as people type
            await generator.until_in_progress(1)
            generator.go.set()
            await telegram.wait_until(lambda: len(telegram.messages(chat)) >= 3, within=20)
            await telegram.settle(quiet=0.3)
    else:
        async with running(telegram, service):
            for text in texts:
                telegram.push(private_message(text))
                await asyncio.sleep(0.4)
            await generator.until_in_progress(1)
            generator.go.set()
            await telegram.wait_until(lambda: len(telegram.messages(chat)) >= 3, within=20)
            await telegram.settle(quiet=0.3)

    assert telegram.texts(chat) == [f"You said: {text}" for text in texts]
    assert all(m.buttons for m in telegram.messages(chat))  # three answers, no refusal
    assert len(telegram.calls_to("sendMessage")) == 3
    assert generator.peak == Counter({"ada": 1})  # one answer at a time
    turns = history(store, chat)  # stored as they arrived, answered in the same order
    assert [text for role, text in turns if role is Role.USER] == texts
    assert [text for role, text in turns if role is Role.ASSISTANT] == telegram.texts(chat)
    assert telegram.errors == []


async def test_bursts_from_ten_people_at_once_each_get_every_answer_in_order(
    telegram: FakeTelegram,
) -> None:
    service, store, generator = _service()
    people = [_person(n) for n in range(10)]
    async with _webhook(telegram, service) as post:
        for text in BURST:  # back to back: each person's three messages interleave
            for n, person in enumerate(people):
                await post(private_message(f"p{n} {text}", sender=person))
        # While the gate is shut, one answer per person is in progress; the rest wait.
        await generator.until_in_progress(10)
        await asyncio.sleep(0.3)
        assert generator.running == Counter({f"p{n}": 1 for n in range(10)})
        generator.go.set()
        await telegram.wait_until(
            lambda: all(len(telegram.messages(p["id"])) >= 3 for p in people), within=30
        )
        await telegram.settle(quiet=0.3)

    for n, person in enumerate(people):
        expected = [f"You said: p{n} {text}" for text in BURST]
        assert telegram.texts(person["id"]) == expected, n
        turns = history(store, person["id"])
        assert [text for role, text in turns if role is Role.USER] == [f"p{n} {t}" for t in BURST]
    assert len(telegram.calls_to("sendMessage")) == 30
    assert max(generator.peak.values()) == 1
    assert telegram.errors == []


async def test_past_the_bound_only_the_extra_messages_are_refused(telegram: FakeTelegram) -> None:
    service, store, generator = _service(max_queued=2)
    chat = ADA["id"]
    texts = [f"ada message {n}" for n in range(5)]
    async with _webhook(telegram, service) as post:
        for text in texts:
            await post(private_message(text))
        await generator.until_in_progress(1)
        generator.go.set()
        await telegram.wait_until(lambda: len(telegram.messages(chat)) >= 5, within=20)
        await telegram.settle(quiet=0.3)
        # The queue is free again: the next message is answered.
        await post(private_message("ada one more"))
        await telegram.wait_until(lambda: len(telegram.messages(chat)) >= 6, within=20)
        await telegram.settle(quiet=0.3)

    refusal = busy_text(2)
    assert "2 more messages" in refusal
    assert "once my next answer" in refusal
    assert telegram.texts(chat) == [
        "You said: ada message 0",
        "You said: ada message 1",
        "You said: ada message 2",
        refusal,
        refusal,
        "You said: ada one more",
    ]
    answered = [role for role, _ in history(store, chat)].count(Role.ASSISTANT)
    assert answered == 4  # every accepted message, and none of the refused ones
    users = [text for role, text in history(store, chat) if role is Role.USER]
    assert users == [*texts[:3], "ada one more"]
    assert generator.peak == Counter({"ada": 1})


async def test_a_person_writing_in_two_chats_gets_everything_answered(
    telegram: FakeTelegram,
) -> None:
    """The turn is per person, across chats; neither chat waits on the other forever."""
    service, store, generator = _service()
    async with _webhook(telegram, service) as post:
        for n in range(3):
            await post(private_message(f"ada private {n}"))
            await post(group_message(f"ada @parley_bot group {n}", sender=ADA))
        await generator.until_in_progress(1)
        await asyncio.sleep(0.3)
        assert generator.in_progress == 1  # one answer of hers at a time, in all her chats
        generator.go.set()
        await telegram.wait_until(
            lambda: (
                len(telegram.messages(ADA["id"])) >= 3 and len(telegram.messages(GROUP["id"])) >= 3
            ),
            within=30,
        )
        await telegram.settle(quiet=0.3)

    assert telegram.texts(ADA["id"]) == [f"You said: ada private {n}" for n in range(3)]
    assert telegram.texts(GROUP["id"]) == [  # in a group the prompt names the speaker
        f"You said: Ada Lovelace: ada group {n}" for n in range(3)
    ]
    assert generator.peak == Counter({"ada": 1})
    assert [role for role, _ in history(store, GROUP["id"])].count(Role.ASSISTANT) == 3


async def test_a_burst_on_slack_gets_three_answers_in_order(slack: FakeSlack) -> None:
    service, store, generator = _service()
    adapter = build_slack(make_inbox(service), settings_for(slack), edit_interval=0.03)
    sender = SlackSender(Starlette(routes=adapter.routes()), signing_secret=SLACK_SECRET)
    texts = [f"ada {text}" for text in BURST]
    for text in texts:
        response = await sender.event(dm(text))
        assert response.status_code == 200
        await asyncio.sleep(0.4)
    await generator.until_in_progress(1)
    generator.go.set()
    await adapter.drain()

    shown = slack.in_thread("D1", None)
    assert [m.shown for m in shown] == [f"You said: {text}" for text in texts]
    assert all(m.buttons for m in shown)
    key = ConversationKey("slack", TEAM, "D1", None)
    asked = [t.text for t in store.history(key, 100) if t.role is Role.USER]
    assert asked == texts
    assert generator.peak == Counter({"ada": 1})
