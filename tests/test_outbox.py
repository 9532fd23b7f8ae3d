"""The outbox in one process: live replies marked delivered, orphaned ones delivered once.

The real Telegram adapter against the fake Bot API server, on a SQLite store. A process
that "died" is played by a hold (:class:`core.jobs.DeliveryHold`) nobody renews, and by
the messages it sent before dying; the tests with real processes killed are in
``tests/test_outbox_processes.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from slack_sdk.web.async_client import AsyncWebClient
from telegram import Bot

from bots.slack.deliver import SlackDeliverer
from bots.telegram.adapter import TelegramAdapter
from core.commands import CommandRegistry
from core.conversation import ConversationOptions, ConversationService, build_responder
from core.db import SqlStore, create_engine_for
from core.generator import EchoGenerator, WordTokenCounter
from core.inbox import Inbox
from core.jobs import DeliveryHold, Job
from core.outbox import Outbox, OutboxOptions
from core.responder import APOLOGY, InProcessAnswerer
from core.safety import Safety
from core.streaming import Streamed
from core.types import ConversationKey, Reply, Role
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import ADA, FakeTelegram, private_message
from tests.slack_fixtures import slack
from tests.telegram_fixtures import options_for, telegram

__all__ = ["slack", "telegram"]

LEASE = 0.6
KEY = ConversationKey("telegram", None, str(ADA["id"]), None)


@dataclass
class Process:
    """One process's parts: store, outbox and the Telegram adapter delivering through it."""

    store: SqlStore
    outbox: Outbox
    adapter: TelegramAdapter


@asynccontextmanager
async def process(
    server: FakeTelegram, database_url: str, generator: EchoGenerator | None = None
) -> AsyncIterator[Process]:
    """A process as the wiring builds it: its outbox started, its adapter polling."""
    store = SqlStore(create_engine_for(database_url))
    options = ConversationOptions(system_prompt="Be brief.", prompt_budget=200, max_new_tokens=50)
    responder = build_responder(
        store=store,
        generator=generator or EchoGenerator(),
        tokens=WordTokenCounter(),
        options=options,
        safety=Safety(),
    )
    answerer = InProcessAnswerer(responder)
    outbox = Outbox(
        store,
        answerer=answerer,
        reply_for=responder.reply_for,
        options=OutboxOptions(lease_seconds=LEASE, sweep_seconds=0.1),
    )
    commands = CommandRegistry()  # no commands: these tests only talk
    service = ConversationService(
        store=store,
        options=options,
        answerer=outbox.answering(answerer),
        commands=commands,
        safety=Safety(),
    )
    inbox = Inbox(service, events=store, conversations=store, outbox=outbox)
    adapter = TelegramAdapter(inbox, options_for(server))
    await adapter.start()
    outbox.add(adapter.deliverer())
    await outbox.start()
    try:
        yield Process(store, outbox, adapter)
    finally:
        await outbox.stop()
        await adapter.stop()
        await outbox.release()
        store.dispose()


def _orphan(store: SqlStore, text: str) -> int:
    """A message a process that died had accepted: its delivery held by nobody alive."""
    store.hold_deliveries(DeliveryHold("dead", 0.05))
    asked = store.append(
        KEY, Role.USER, text, user=None, platform_message_id="77", expects_answer=True
    )
    store.hold_deliveries(None)
    return asked.id


def _answered(store: SqlStore, message_id: int, text: str) -> None:
    """The dead process's job was answered (a worker finished it after the web died)."""
    claim = store.claim_job(message_id, lease_seconds=30, max_attempts=3)
    assert claim.token is not None
    store.finish_job(message_id, claim.token, text, model_version="v1", context=None)


def _job(store: SqlStore, message_id: int) -> Job:
    job = store.job(message_id)
    assert job is not None
    return job


async def test_a_live_reply_records_its_message_and_is_marked_delivered(
    telegram: FakeTelegram, sqlite_url: str
) -> None:
    async with process(telegram, sqlite_url) as live:
        telegram.push(private_message("hello there"))
        await telegram.wait_until(lambda: any(m.buttons for m in telegram.messages(ADA["id"])))
        (asked,) = [t for t in live.store.history(KEY, 10) if t.role is Role.USER]
        await telegram.wait_until(lambda: _job(live.store, asked.id).delivered)

    (shown,) = telegram.messages(ADA["id"])
    assert shown.text == "You said: hello there"
    assert _job(live.store, asked.id).shown == (str(shown.message_id),)


async def test_an_answer_whose_process_died_mid_stream_completes_the_message_it_had_sent(
    telegram: FakeTelegram, sqlite_url: str
) -> None:
    async with process(telegram, sqlite_url) as live:
        await live.outbox.stop()  # sweep only once the dead process's message is there
        message_id = _orphan(live.store, "tell me more")
        async with Bot(telegram.token, base_url=telegram.api_url) as bot:
            partial = str((await bot.send_message(ADA["id"], "The full")).message_id)
        live.store.record_shown(message_id, "dead", [partial])
        _answered(live.store, message_id, "The full answer, as stored.")
        await asyncio.sleep(0.1)
        await live.outbox.start()
        await telegram.wait_until(lambda: _job(live.store, message_id).delivered)

    (shown,) = telegram.messages(ADA["id"])
    assert str(shown.message_id) == partial
    assert shown.text == "The full answer, as stored."
    assert [b["text"] for b in shown.buttons] == ["👍", "👎"]
    assert len(telegram.calls_to("sendMessage")) == 1


async def test_a_message_accepted_but_never_answered_is_answered_and_sent_once(
    telegram: FakeTelegram, sqlite_url: str
) -> None:
    async with process(telegram, sqlite_url) as live:
        message_id = _orphan(live.store, "are you there")
        await telegram.wait_until(lambda: _job(live.store, message_id).delivered)
        await telegram.settle(quiet=0.3)

    (shown,) = telegram.messages(ADA["id"])
    assert shown.text == "You said: are you there"
    assert shown.buttons
    assert len(telegram.calls_to("sendMessage")) == 1


async def test_a_job_that_failed_while_its_process_was_gone_gets_one_apology(
    telegram: FakeTelegram, sqlite_url: str
) -> None:
    async with process(telegram, sqlite_url) as live:
        await live.outbox.stop()
        message_id = _orphan(live.store, "hm")
        assert live.store.fail_job(message_id, "the model failed")
        await asyncio.sleep(0.1)
        await live.outbox.start()
        await telegram.wait_until(lambda: _job(live.store, message_id).delivered)
        await telegram.settle(quiet=0.3)

    assert telegram.texts(ADA["id"]) == [APOLOGY]


async def test_on_slack_an_orphaned_answer_updates_the_message_its_dead_process_posted(
    slack: FakeSlack, sqlite_url: str
) -> None:
    store = SqlStore(create_engine_for(sqlite_url))
    key = ConversationKey("slack", "T1", "D1", None)
    client = AsyncWebClient(token=FakeSlack.TOKEN, base_url=slack.api_url)
    store.hold_deliveries(DeliveryHold("dead", 0.05))
    asked = store.append(key, Role.USER, "explain", user=None, expects_answer=True)
    partial = await client.chat_postMessage(channel="D1", text="Part of")
    store.record_shown(asked.id, "dead", [str(partial["ts"])])
    _answered(store, asked.id, "Part of the answer, and the rest.")
    reply_for = build_responder(
        store=store,
        generator=EchoGenerator(),
        tokens=WordTokenCounter(),
        options=ConversationOptions(
            system_prompt="Be brief.", prompt_budget=200, max_new_tokens=50
        ),
        safety=Safety(),
    ).reply_for
    outbox = Outbox(
        store,
        answerer=_NoAnswerer(),
        reply_for=reply_for,
        options=OutboxOptions(lease_seconds=LEASE, sweep_seconds=0.1),
    )
    outbox.add(SlackDeliverer(client, edit_interval=0.03))
    await outbox.start()
    try:
        for _ in range(100):
            if _job(store, asked.id).delivered:
                break
            await asyncio.sleep(0.05)
    finally:
        await outbox.stop()
        await outbox.release()
        store.dispose()

    (shown,) = slack.posted("D1")
    assert shown.ts == partial["ts"]
    assert shown.shown == "Part of the answer, and the rest."
    assert shown.buttons
    assert len(slack.calls_of("chat.postMessage")) == 1


class _NoAnswerer:
    """The answerer of a test whose jobs have all ended (none is answered anew)."""

    def answer(self, message_id: int) -> Streamed[Reply]:
        raise AssertionError(f"message {message_id} was answered again")
