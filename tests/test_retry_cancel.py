"""/retry and /cancel in the core: through the conversation service and the inbox."""

from __future__ import annotations

import asyncio
import io
import threading
from dataclasses import replace

from bots.console import PROMPT_BOT, run_console
from core.inbox import Inbox, Incoming
from core.jobs import JobStatus
from core.store import Store
from core.turn_commands import (
    CANCELLED,
    DROPPED,
    NOTHING_TO_CANCEL,
    NOTHING_TO_RETRY,
    STOPPED_NOTE,
    cancelled,
    retry_heading,
    stops_an_answer,
)
from core.types import Message, Reply, ReplyKind, Role
from tests.factories import make_inbox, make_message, make_service, make_user
from tests.telegram_fixtures import PacedGenerator

LONG = " ".join(f"w{i}" for i in range(400))


class Screen:
    """A renderer that records what it is shown: the core's side of every platform."""

    def __init__(self, name: str = "m-1") -> None:
        self.name = name
        self.text = ""
        self.final: Reply | None = None
        self.done = asyncio.Event()
        self.shown = asyncio.Event()
        """Set once some text shows."""

    async def add(self, delta: str) -> None:
        self.text += delta
        self.shown.set()

    async def finish(self, reply: Reply) -> str | None:
        assert self.final is None, "a second reply to one message"
        self.final = reply
        self.done.set()
        return self.name

    async def fail(self, apology: str) -> None:
        raise AssertionError(f"unexpected apology: {apology}")


async def send(inbox: Inbox, message: Message, screen: Screen, polled: bool = False) -> None:
    await inbox.receive(Incoming(message, refusable=not polled), lambda _: screen)


async def say(service_inbox: Inbox, text: str, **changes: object) -> Reply:
    screen = Screen()
    message = replace(make_message(text), **changes)  # type: ignore[arg-type]
    await send(service_inbox, message, screen)
    await screen.done.wait()
    assert screen.final is not None
    return screen.final


def answers(store: Store, message: Message) -> list[str]:
    return [t.text for t in store.history(message.key, 100) if t.role is Role.ASSISTANT]


# --------------------------------------------------------------------------- /retry


async def test_help_lists_retry_and_cancel() -> None:
    service, _, _ = make_service()
    reply = await say(make_inbox(service), "/help")
    assert "/retry — answer your last message again" in reply.text
    assert "/cancel — stop the answer I am writing for you" in reply.text


async def test_retry_answers_the_last_message_again_as_a_new_answer() -> None:
    service, store, generator = make_service()
    inbox = make_inbox(service)
    first = await say(inbox, "what is a monad?")
    again = await say(inbox, "/retry")
    assert first.kind is again.kind is ReplyKind.ANSWER
    assert first.answer_id is not None
    assert again.answer_id is not None
    assert again.answer_id != first.answer_id
    assert again.text == retry_heading("what is a monad?") + "You said: what is a monad?"
    # The earlier answer stays stored; the question is asked again, with its own job.
    history = [(t.role, t.text) for t in store.history(make_message("").key, 100)]
    assert history == [
        (Role.USER, "what is a monad?"),
        (Role.ASSISTANT, "You said: what is a monad?"),
        (Role.USER, "what is a monad?"),
        (Role.ASSISTANT, "You said: what is a monad?"),
    ]
    assert len(generator.requests) == 2
    assert store.answer(first.answer_id) is not None


async def test_retry_with_nothing_to_answer_again_says_so() -> None:
    service, _, generator = make_service()
    reply = await say(make_inbox(service), "/retry")
    assert reply.text == NOTHING_TO_RETRY
    assert reply.kind is ReplyKind.NOTICE
    assert generator.requests == []


async def test_retry_in_a_group_answers_the_senders_own_message() -> None:
    service, _, generator = make_service()
    inbox = make_inbox(service)
    ada, bob = make_user("ada"), make_user("bob")
    await say(inbox, "ada's question", user=ada, is_group=True, mentions_bot=True)
    await say(inbox, "bob's question", user=bob, is_group=True, mentions_bot=True)
    again = await say(inbox, "/retry", user=ada, is_group=True)
    assert again.kind is ReplyKind.ANSWER
    assert "ada's question" in generator.requests[-1].turns[-1].content
    nothing = await say(inbox, "/retry", user=make_user("cy"), is_group=True)
    assert nothing.text == NOTHING_TO_RETRY


# --------------------------------------------------------------------------- /cancel


async def test_cancel_with_nothing_in_progress_says_so() -> None:
    service, _, _ = make_service()
    inbox = make_inbox(service)
    assert (await say(inbox, "/cancel")).text == NOTHING_TO_CANCEL
    await say(inbox, "hello")
    assert (await say(inbox, "/cancel")).text == NOTHING_TO_CANCEL


async def test_cancel_stops_the_answer_in_progress_and_the_next_message_is_answered() -> None:
    service, store, _ = make_service(
        generator=PacedGenerator(replies=[LONG], delay=0.02), max_new_tokens=500
    )
    inbox = make_inbox(service)
    asked = make_message("tell me everything")
    answer = Screen("m-1")
    await send(inbox, asked, answer)
    await answer.shown.wait()
    notice = await say(inbox, "/cancel")
    assert notice.text == "OK, I stopped my answer."
    await answer.done.wait()
    assert answer.final is not None
    assert answer.final.kind is ReplyKind.ANSWER
    assert answer.final.text.endswith("\n\n" + STOPPED_NOTE)
    assert answer.text == answer.final.text  # what was shown, then the note
    assert len(answer.final.text.split()) < 400
    # The job ended once, done, with what was shown as its answer.
    [question] = [t for t in store.history(asked.key, 100) if t.role is Role.USER]
    job = store.job(question.id)
    assert job is not None
    assert job.status is JobStatus.DONE
    assert job.answer_id == answer.final.answer_id
    assert answers(store, asked) == [answer.final.text]
    # The next message is answered as usual.
    after = await say(inbox, "and now?")
    assert after.text == "You said: and now?"
    await inbox.drain()


async def test_cancel_is_not_queued_behind_the_answer_it_stops_when_polled() -> None:
    service, _, _ = make_service(
        generator=PacedGenerator(replies=[LONG], delay=0.02), max_new_tokens=500
    )
    inbox = make_inbox(service)
    answer = Screen()
    await send(inbox, make_message("go on"), answer, polled=True)
    await answer.shown.wait()
    stop = Screen()
    await send(inbox, make_message("/cancel"), stop, polled=True)
    await stop.done.wait()
    await answer.done.wait()
    assert stop.final is not None
    assert stop.final.text == "OK, I stopped my answer."
    assert answer.final is not None
    assert answer.final.text.endswith(STOPPED_NOTE)


async def test_cancel_drops_the_senders_waiting_messages_with_one_reply_each() -> None:
    service, store, _ = make_service(
        generator=PacedGenerator(replies=[LONG], delay=0.02), max_new_tokens=500
    )
    inbox = make_inbox(service)
    first, second = Screen("m-1"), Screen("m-2")
    await send(inbox, make_message("first"), first)
    await send(inbox, make_message("second"), second)
    await first.shown.wait()
    notice = await say(inbox, "/cancel")
    assert notice.text == (
        "OK, I stopped my answer and dropped your message that was waiting for an answer."
    )
    await first.done.wait()
    await second.done.wait()
    assert first.final is not None
    assert first.final.text.endswith(STOPPED_NOTE)
    assert second.final is not None
    assert second.final.text == DROPPED
    key = make_message("").key
    [_, waiting] = [t for t in store.history(key, 100) if t.role is Role.USER]
    job = store.job(waiting.id)
    assert job is not None
    assert job.status is JobStatus.FAILED
    assert job.error == CANCELLED


async def test_cancel_stops_only_the_senders_answer() -> None:
    service, _, _ = make_service(
        generator=PacedGenerator(replies=[LONG], delay=0.02), max_new_tokens=500
    )
    inbox = make_inbox(service)
    answer = Screen()
    asked = replace(make_message("long one", is_group=True), mentions_bot=True)
    await send(inbox, asked, answer)
    await answer.shown.wait()
    other = await say(inbox, "/cancel", user=make_user("bob"), is_group=True)
    assert other.text == NOTHING_TO_CANCEL
    mine = await say(inbox, "/cancel", is_group=True)
    assert mine.text == "OK, I stopped my answer."
    await answer.done.wait()


def test_only_cancel_skips_the_conversations_turn() -> None:
    assert stops_an_answer(make_message("/cancel"))
    assert stops_an_answer(make_message("/Cancel@ParleyBot"))
    assert not stops_an_answer(make_message("/retry"))
    assert not stops_an_answer(make_message("cancel my subscription"))


def test_the_cancel_reply_says_what_it_stopped_and_dropped() -> None:
    assert cancelled(0, 0) == NOTHING_TO_CANCEL
    assert cancelled(1, 0) == "OK, I stopped my answer."
    assert cancelled(0, 2) == "OK, I dropped your 2 messages that were waiting for answers."


# --------------------------------------------------------------------------- the console


class Typist(io.StringIO):
    """Standard input typed by a person: each line once its condition holds."""

    def __init__(self, lines: list[tuple[str, threading.Event | None]]) -> None:
        super().__init__()
        self.lines = lines

    def readline(self, size: int | None = -1, /) -> str:  # type: ignore[override]
        if not self.lines:
            return ""
        text, after = self.lines.pop(0)
        if after is not None:
            assert after.wait(10), f"never ready to type {text!r}"
        return text + "\n"


class Terminal(io.StringIO):
    """Standard output that notes when the first answer shows, and when the echo has ended."""

    def __init__(self) -> None:
        super().__init__()
        self.streaming = threading.Event()
        self.echoed = threading.Event()

    def write(self, text: str) -> int:
        if "w2" in text:
            self.streaming.set()
        written = super().write(text)
        if text == "\n" and "You said" in self.getvalue():
            self.echoed.set()
        return written


async def test_cancel_typed_in_the_console_stops_the_answer_and_retry_answers_again() -> None:
    service, _, _ = make_service(
        generator=PacedGenerator(replies=[LONG], delay=0.02), max_new_tokens=500
    )
    out = Terminal()
    typed = Typist(
        [
            ("tell me everything", None),
            ("/cancel", out.streaming),
            ("/retry", None),
            ("/cancel", out.echoed),
            ("/quit", None),
        ]
    )
    await run_console(service, user=make_user(), stdin=typed, stdout=out)
    text = out.getvalue()
    stopped = text[text.index("w0") : text.index(STOPPED_NOTE)]
    assert 3 <= len(stopped.split()) < 300
    assert f"{STOPPED_NOTE}\n{PROMPT_BOT}OK, I stopped my answer." in text
    assert retry_heading("tell me everything") + "You said: tell me everything" in text
    assert f"{PROMPT_BOT}{NOTHING_TO_CANCEL}" in text
    assert text.rstrip().endswith("Bye!")
