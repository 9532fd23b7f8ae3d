"""The Telegram adapter end to end: python-telegram-bot against a local fake Bot API server.

Every test runs the real client over HTTP to :class:`tests.fakes.telegram_server.FakeTelegram`
and the real conversation service (memory store, scripted generator), and asserts what a
person in the chat would see and what the store recorded.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette

from bots.telegram import (
    SECRET_HEADER,
    WEBHOOK_PATH,
    TelegramAdapter,
    TelegramOptions,
    build_telegram,
)
from bots.telegram import __main__ as telegram_main
from bots.telegram.adapter import BAD_BUTTON
from bots.text import FENCE, utf16_len
from bots.web import create_app
from config.settings import Settings
from config.wiring import Parley
from core.commands import COMMANDS
from core.conversation import ConversationService
from core.errors import ConfigurationError, StoreError
from core.generator import EchoGenerator, GenerationRequest, GenerationResult
from core.store import Store
from core.types import ConversationKey, Rating, Role
from tests.factories import make_inbox, make_service
from tests.fakes.explainer import LINE, PictureExplainer
from tests.fakes.telegram_server import (
    ADA,
    BOB,
    FORUM,
    GROUP,
    OTHER_BOT,
    FakeTelegram,
    SentMessage,
    callback_query,
    edited,
    group_message,
    photo_message,
    private_message,
    topic_message,
)

# PTB itself warns when it builds a RetryAfter from an integer; the adapter handles both forms.
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

SECRET = "s3cret-Token_1"
WEBHOOK_URL = "https://parley.example" + WEBHOOK_PATH


@dataclass(slots=True)
class PacedGenerator(EchoGenerator):
    """The echo generator, pausing ``delay`` seconds every ``every`` words: a model's pace."""

    delay: float = 0.02
    every: int = 1

    async def _run(self, request: GenerationRequest) -> AsyncIterator[str | GenerationResult]:
        count = 0
        async for item in EchoGenerator._run(self, request):
            if isinstance(item, str):
                count += 1
                if count % self.every == 0:
                    await asyncio.sleep(self.delay)
            yield item


@dataclass(slots=True)
class BreakingGenerator(EchoGenerator):
    """The echo generator, failing after ``words`` words of its answer."""

    words: int = 3

    async def _run(self, request: GenerationRequest) -> AsyncIterator[str | GenerationResult]:
        count = 0
        async for item in EchoGenerator._run(self, request):
            if count == self.words:
                raise RuntimeError("the model fell over")
            count += 1
            yield item


class DownStore:
    """A store whose database is down: every method raises StoreError."""

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def fail(*args: object, **kwargs: object) -> Any:
            raise StoreError("The database at PARLEY_DATABASE_URL cannot be reached.")

        return fail


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


def options_for(server: FakeTelegram, **changes: Any) -> TelegramOptions:
    """Options for the fake server, paced fast enough for tests."""
    values: dict[str, Any] = {
        "token": server.token,
        "api_url": server.api_url,
        "edit_interval": 0.05,
        "typing_interval": 0.5,
        "poll_timeout": 1,
        "drain_timeout": 5,
    }
    return TelegramOptions(**{**values, **changes})


@asynccontextmanager
async def running(
    server: FakeTelegram, service: ConversationService, **changes: Any
) -> AsyncIterator[TelegramAdapter]:
    adapter = TelegramAdapter(make_inbox(service), options_for(server, **changes))
    await adapter.start()
    try:
        yield adapter
    finally:
        await adapter.stop()


def with_buttons(server: FakeTelegram, chat_id: int) -> list[SentMessage]:
    return [m for m in server.messages(chat_id) if m.buttons]


async def answered(server: FakeTelegram, chat_id: int, count: int) -> list[SentMessage]:
    """Wait until ``count`` answers (messages with buttons) show in the chat; return them."""
    await server.wait_until(lambda: len(with_buttons(server, chat_id)) >= count)
    return with_buttons(server, chat_id)


async def replied(server: FakeTelegram, chat_id: int, count: int, **where: Any) -> list[str]:
    """Wait until the chat shows ``count`` bot messages and nothing more happens."""
    await server.wait_until(lambda: len(server.messages(chat_id, **where)) >= count)
    await server.settle(quiet=0.2)
    return server.texts(chat_id, **where)


def button_data(message: SentMessage, label: str) -> str:
    return str(next(b["callback_data"] for b in message.buttons if b["text"] == label))


def history(store: Store, chat: int, thread: str | None = None) -> list[tuple[Role, str]]:
    key = ConversationKey("telegram", None, str(chat), thread)
    return [(t.role, t.text) for t in store.history(key, 100)]


# ----------------------------------------------------------------- the scripted person


async def test_a_person_holds_a_five_turn_conversation_rates_and_asks_why(
    telegram: FakeTelegram,
) -> None:
    replies = [
        "Hello Ada! I am Parley, how can I help you today?",
        "The Analytical Engine was designed by Charles Babbage in 1837.",
        "It used punched cards, borrowed from the Jacquard loom, for programs and data.",
        "Your notes on it contain what many call the first published computer program.",
        "You are welcome. Ask me anything else whenever you like.",
    ]
    questions = [
        "Hi!",
        "Who designed the Analytical Engine?",
        "How was it programmed?",
        "What did I write about it?",
        "Thanks!",
    ]
    service, store, _ = make_service(generator=PacedGenerator(replies=list(replies), delay=0.02))
    chat = ADA["id"]
    async with running(telegram, service):
        assert [c["command"] for c in telegram.commands] == list(COMMANDS)
        for turn, question in enumerate(questions, start=1):
            telegram.push(private_message(question))
            shown = await answered(telegram, chat, turn)
            assert shown[-1].text == replies[turn - 1]
            assert shown[-1].edits >= 2, "the answer should stream in as edits"
        first, second = with_buttons(telegram, chat)[:2]
        telegram.push(callback_query(button_data(first, "👍"), telegram.as_message(first)))
        telegram.push(callback_query(button_data(second, "👎"), telegram.as_message(second)))
        await telegram.wait_until(lambda: len(telegram.callback_answers) == 2)
        telegram.push(private_message("/explain"))
        texts = await replied(telegram, chat, len(replies) + 1)

    # Every accepted message got exactly one reply, in order, each in one message.
    assert texts[:5] == replies
    assert texts[5].startswith("My last answer came from echo-1")
    assert len(telegram.calls_to("sendMessage")) == 6
    assert [a["text"] for a in telegram.callback_answers] == [
        "Thanks, noted that my answer was helpful.",
        "Thanks, noted that my answer was not good.",
    ]
    answers = [t for t in store.history(ConversationKey("telegram", None, str(chat)), 100)]
    answer_ids = [t.id for t in answers if t.role is Role.ASSISTANT]
    assert [f.rating for f in store.feedback_for(answer_ids[0])] == [Rating.GOOD]
    assert [f.rating for f in store.feedback_for(answer_ids[1])] == [Rating.BAD]
    # Each answer knows the Telegram message that shows it.
    shown_ids = [str(m.message_id) for m in with_buttons(telegram, chat)]
    assert [t.platform_message_id for t in answers if t.role is Role.ASSISTANT] == shown_ids
    assert telegram.errors == []
    assert telegram.calls_to("sendChatAction")
    for call in telegram.calls_to("sendMessage"):
        assert call.params["link_preview_options"] == {"is_disabled": True}
        assert "parse_mode" not in call.params


# --------------------------------------------------------------------------- streaming


async def test_edits_are_paced_and_never_repeat_the_text(telegram: FakeTelegram) -> None:
    words = " ".join(f"word{i}" for i in range(45))
    service, _, _ = make_service(generator=PacedGenerator(replies=[words], delay=0.01))
    async with running(telegram, service, edit_interval=0.2):
        telegram.push(private_message("talk to me"))
        await answered(telegram, ADA["id"], 1)
    edits = telegram.calls_to("editMessageText")
    assert 2 <= len(edits) <= 45 // 4  # far fewer edits than words: they are paced
    texts = [c.params["text"] for c in edits]
    assert len(set(texts)) == len(texts)
    chat_calls = [c for c in telegram.calls if c.method in ("sendMessage", "editMessageText")]
    gaps = [b.at - a.at for a, b in itertools.pairwise(chat_calls)]
    assert min(gaps) >= 0.1  # unpaced, they would be ~0.01 s apart
    assert telegram.texts(ADA["id"]) == [words]
    assert telegram.errors == []


async def test_a_429_on_edit_is_waited_out_and_the_final_text_arrives(
    telegram: FakeTelegram,
) -> None:
    words = " ".join(f"w{i}" for i in range(40))
    service, _, _ = make_service(generator=PacedGenerator(replies=[words], delay=0.01))
    telegram.fail_next("editMessageText", 1, retry_after=1)
    async with running(telegram, service):
        telegram.push(private_message("go"))
        shown = await answered(telegram, ADA["id"], 1)
    assert shown[0].text == words
    calls = [c for c in telegram.calls if c.method in ("sendMessage", "editMessageText")]
    refused = telegram.calls_to("editMessageText")[0]
    after = [c for c in calls if c.at > refused.at]
    assert after, "the final text must still be delivered"
    assert after[0].at - refused.at >= 0.95, "retry_after must be honoured"
    assert len(after) <= 2, "edits skipped while waiting are not replayed"
    assert telegram.errors == []


async def test_a_429_on_the_first_send_still_delivers(telegram: FakeTelegram) -> None:
    service, _, _ = make_service(generator=EchoGenerator(replies=["All good."]))
    telegram.fail_next("sendMessage", 2, retry_after=1)
    async with running(telegram, service):
        telegram.push(private_message("hello"))
        shown = await answered(telegram, ADA["id"], 1)
    assert [m.text for m in telegram.messages(ADA["id"])] == ["All good."]
    assert shown[0].text == "All good."


def long_answer() -> str:
    """About 10,000 characters: prose paragraphs with emoji, and a long code block."""
    prose = [
        f"Paragraph {i} 🙂 " + " ".join(f"sentence{i}x{j}" for j in range(48)) for i in range(14)
    ]
    code = (
        "```python\n"
        + "\n".join(f"def step_{i}(value):\n    return value * {i}  # 🙂" for i in range(30))
        + "\n```"
    )
    text = "\n\n".join([*prose[:6], code, *prose[6:]])
    assert 9_500 <= len(text) <= 11_000
    return text


async def test_a_long_answer_is_split_at_paragraphs_with_code_intact(
    telegram: FakeTelegram,
) -> None:
    answer = long_answer()
    generator = PacedGenerator(replies=[answer], delay=0.005, every=40)
    service, _, _ = make_service(generator=generator, max_new_tokens=5000)
    async with running(telegram, service):
        telegram.push(private_message("tell me everything"))
        await answered(telegram, ADA["id"], 1)
        await telegram.settle(quiet=0.2)
    parts = telegram.texts(ADA["id"])
    assert len(parts) == 3
    assert all(utf16_len(p) <= 4096 for p in parts)
    assert "\n\n".join(parts) == answer  # cut only between paragraphs
    code = answer[answer.index(FENCE) : answer.rindex(FENCE) + 3]
    assert any(code in p for p in parts)
    messages = telegram.messages(ADA["id"])
    assert [bool(m.buttons) for m in messages] == [False, False, True]
    # Streaming grew into new messages: nothing was sent twice or deleted.
    assert len(telegram.calls_to("sendMessage")) == 3
    assert telegram.errors == []


# ----------------------------------------------------------------------------- buttons


async def test_button_presses_record_and_replace_feedback(telegram: FakeTelegram) -> None:
    service, store, _ = make_service(generator=EchoGenerator(replies=["Paris."]))
    async with running(telegram, service):
        telegram.push(private_message("Capital of France?"))
        (shown,) = await answered(telegram, ADA["id"], 1)
        answer_id = int(button_data(shown, "👍").split(":")[1])
        telegram.push(callback_query(button_data(shown, "👍"), telegram.as_message(shown)))
        await telegram.wait_until(lambda: len(telegram.callback_answers) == 1)
        assert [f.rating for f in store.feedback_for(answer_id)] == [Rating.GOOD]
        telegram.push(callback_query(button_data(shown, "👎"), telegram.as_message(shown)))
        telegram.push(
            callback_query(button_data(shown, "👍"), telegram.as_message(shown), sender=BOB)
        )
        await telegram.wait_until(lambda: len(telegram.callback_answers) == 3)
    ratings = {f.user.id: f.rating for f in store.feedback_for(answer_id)}
    assert ratings == {str(ADA["id"]): Rating.BAD, str(BOB["id"]): Rating.GOOD}
    assert all(a["callback_query_id"].startswith("cq-") for a in telegram.callback_answers)


@pytest.mark.parametrize("data", ["fb:abc:good", "fb:1:meh", "nonsense", "fb:", "fb:1:good:x"])
async def test_a_malformed_button_gets_a_notice_not_a_crash(
    telegram: FakeTelegram, data: str
) -> None:
    service, _, _ = make_service()
    message = {"message_id": 1, "from": ADA, "chat": GROUP, "date": 0, "text": "x"}
    async with running(telegram, service):
        telegram.push(callback_query(data, message))
        await telegram.wait_until(lambda: telegram.callback_answers)
    assert telegram.callback_answers[0]["text"] == BAD_BUTTON


async def test_a_button_for_an_unknown_answer_says_so(telegram: FakeTelegram) -> None:
    service, _, _ = make_service()
    message = {"message_id": 1, "from": ADA, "chat": GROUP, "date": 0, "text": "x"}
    async with running(telegram, service):
        telegram.push(callback_query("fb:9999:good", message))
        await telegram.wait_until(lambda: telegram.callback_answers)
    assert "can't find that answer" in telegram.callback_answers[0]["text"]


async def test_feedback_replying_to_an_answer_rates_that_answer(telegram: FakeTelegram) -> None:
    service, store, _ = make_service(generator=EchoGenerator(replies=["Old answer.", "New."]))
    async with running(telegram, service):
        telegram.push(private_message("first"))
        telegram.push(private_message("second"))
        first, _ = await answered(telegram, ADA["id"], 2)
        telegram.push(
            private_message("/feedback bad it was wrong", reply_to=telegram.as_message(first))
        )
        await replied(telegram, ADA["id"], 3)
    answer_id = int(button_data(first, "👎").split(":")[1])
    (feedback,) = store.feedback_for(answer_id)
    assert (feedback.rating, feedback.correction) == (Rating.BAD, "it was wrong")


async def test_replies_in_one_chat_keep_the_order_of_the_messages(
    telegram: FakeTelegram,
) -> None:
    replies = ["first answer " * 5, "second answer " * 5, "third answer " * 5]
    generator = PacedGenerator(replies=[r.strip() for r in replies], delay=0.01)
    service, _, _ = make_service(generator=generator)
    async with running(telegram, service):
        for question in ("one", "two", "three"):
            telegram.push(private_message(question))
        shown = await answered(telegram, ADA["id"], 3)
    assert [m.text for m in shown] == [r.strip() for r in replies]
    sends = telegram.calls_to("sendMessage")
    assert len(sends) == 3
    # Each answer is complete (no more edits) before the next one starts.
    for answer, next_send in zip(shown, sends[1:], strict=False):
        touching = [c for c in telegram.calls if c.params.get("message_id") == answer.message_id]
        assert all(c.at <= next_send.at for c in touching)


# ------------------------------------------------------------------------------ groups


async def test_a_group_is_answered_only_when_addressed(telegram: FakeTelegram) -> None:
    service, store, generator = make_service(generator=EchoGenerator(replies=["Hi team!"]))
    chat = GROUP["id"]
    async with running(telegram, service):
        telegram.push(group_message("just chatting among ourselves"))
        telegram.push(group_message("/help@other_bot"))
        mention = telegram.push(group_message("@parley_bot, say hi to the team"))
        await answered(telegram, chat, 1)
        await telegram.settle(quiet=0.2)
    (shown,) = telegram.messages(chat)
    assert shown.text == "Hi team!"
    assert shown.reply_to == mention["message"]["message_id"]  # quotes whom it answers
    # The unaddressed message is not stored either: the core never saw it.
    assert history(store, chat) == [(Role.USER, "say hi to the team"), (Role.ASSISTANT, "Hi team!")]
    assert generator.requests[0].turns[-1].content.endswith("say hi to the team")


async def test_a_reply_to_the_bot_is_answered_without_a_mention(telegram: FakeTelegram) -> None:
    service, _, _ = make_service(generator=EchoGenerator(replies=["First.", "Second."]))
    chat = GROUP["id"]
    async with running(telegram, service):
        telegram.push(group_message("@parley_bot first question"))
        (first,) = await answered(telegram, chat, 1)
        telegram.push(group_message("and a follow-up", reply_to=telegram.as_message(first)))
        await answered(telegram, chat, 2)
        bob = {"message_id": 7, "from": BOB, "chat": GROUP, "date": 0, "text": "hey"}
        telegram.push(group_message("a reply to Bob", reply_to=bob))
        await telegram.settle(quiet=0.2)
    assert telegram.texts(chat) == ["First.", "Second."]


async def test_commands_in_a_group_are_answered(telegram: FakeTelegram) -> None:
    service, _, _ = make_service()
    chat = GROUP["id"]
    async with running(telegram, service):
        telegram.push(group_message("/help@parley_bot"))
        await replied(telegram, chat, 1)
        telegram.push(group_message("/frobnicate"))
        texts = await replied(telegram, chat, 2)
    assert texts[0].startswith("Ask me anything")
    assert texts[1].startswith("I don't know the command /frobnicate")


async def test_forum_topics_are_separate_conversations(telegram: FakeTelegram) -> None:
    service, store, _ = make_service(generator=EchoGenerator(replies=["Topic ten.", "Topic 20."]))
    chat = FORUM["id"]
    async with running(telegram, service):
        telegram.push(topic_message("@parley_bot in ten", 10))
        await answered(telegram, chat, 1)
        telegram.push(topic_message("@parley_bot in twenty", 20))
        await answered(telegram, chat, 2)
        telegram.push(topic_message("/explain", 20))
        await replied(telegram, chat, 3)
    assert telegram.texts(chat, thread_id=10) == ["Topic ten."]
    assert telegram.texts(chat, thread_id=20)[0] == "Topic 20."
    assert "in twenty" in telegram.texts(chat, thread_id=20)[1]
    assert "in ten" not in telegram.texts(chat, thread_id=20)[1]
    assert history(store, chat, "10") == [(Role.USER, "in ten"), (Role.ASSISTANT, "Topic ten.")]
    assert history(store, chat, "20")[:2] == [
        (Role.USER, "in twenty"),
        (Role.ASSISTANT, "Topic 20."),
    ]
    assert history(store, chat) == []
    assert {c.params["message_thread_id"] for c in telegram.calls_to("sendChatAction")} <= {10, 20}


# ---------------------------------------------------------------------------- pictures


def text_calls_before_photos(server: FakeTelegram) -> bool:
    """True when every send and edit of text came before the first photo."""
    methods = [c.method for c in server.calls if c.method != "getUpdates"]
    first_photo = methods.index("sendPhoto")
    texts = {"sendMessage", "editMessageText", "editMessageReplyMarkup", "deleteMessage"}
    return not texts & set(methods[first_photo:])


async def test_explain_sends_its_pictures_as_photos_after_the_text(
    telegram: FakeTelegram,
) -> None:
    explainer = PictureExplainer()
    generator = EchoGenerator(replies=["Paris."])
    service, _, _ = make_service(generator=generator, explainer=explainer)
    chat = ADA["id"]
    async with running(telegram, service):
        telegram.push(private_message("Capital of France?"))
        await answered(telegram, chat, 1)
        telegram.push(private_message("/explain"))
        await telegram.wait_until(lambda: len(telegram.photos(chat)) == 2)
        await telegram.settle(quiet=0.2)
    answer, explained = telegram.texts(chat)
    assert answer == "Paris."
    assert explained.startswith(LINE)
    assert "prompt tokens" in explained
    photos = telegram.photos(chat)
    assert [(p.filename, p.data) for p in photos] == [
        ("explain.png", explainer.chart),
        ("mood.png", explainer.mood),
    ]
    # A private chat's replies quote nothing, the photos neither; no caption repeats the text.
    assert [(p.thread_id, p.reply_to, p.caption) for p in photos] == [(None, None, None)] * 2
    assert text_calls_before_photos(telegram)
    assert len(telegram.calls_to("sendPhoto")) == 2
    assert explainer.explained == 1
    assert telegram.errors == []


async def test_pictures_go_to_the_forum_topic_and_quote_the_command(
    telegram: FakeTelegram,
) -> None:
    explainer = PictureExplainer()
    generator = EchoGenerator(replies=["Topic answer."])
    service, _, _ = make_service(generator=generator, explainer=explainer)
    chat = FORUM["id"]
    async with running(telegram, service):
        telegram.push(topic_message("@parley_bot a question", 20))
        await answered(telegram, chat, 1)
        command = telegram.push(topic_message("/explain", 20))
        await telegram.wait_until(lambda: len(telegram.photos(chat)) == 2)
        await telegram.settle(quiet=0.2)
    command_id = command["message"]["message_id"]
    (_, explained) = telegram.messages(chat, thread_id=20)
    assert explained.text.startswith(LINE)
    assert explained.reply_to == command_id
    photos = telegram.photos(chat, thread_id=20)
    assert [p.data for p in photos] == [explainer.chart, explainer.mood]
    assert [p.reply_to for p in photos] == [command_id, command_id]
    assert telegram.photos(chat, thread_id=10) == []
    assert text_calls_before_photos(telegram)


async def test_a_429_on_a_photo_is_waited_out_and_each_photo_arrives_once(
    telegram: FakeTelegram,
) -> None:
    explainer = PictureExplainer()
    service, _, _ = make_service(generator=EchoGenerator(replies=["Yes."]), explainer=explainer)
    telegram.fail_next("sendPhoto", 1, retry_after=1)
    chat = ADA["id"]
    async with running(telegram, service):
        telegram.push(private_message("Is it?"))
        await answered(telegram, chat, 1)
        telegram.push(private_message("/explain"))
        await telegram.wait_until(lambda: len(telegram.photos(chat)) == 2, within=10)
        await telegram.settle(quiet=0.2)
    assert [p.data for p in telegram.photos(chat)] == [explainer.chart, explainer.mood]
    refused, again, _ = telegram.calls_to("sendPhoto")
    assert again.at - refused.at >= 0.95, "retry_after must be honoured"
    assert len(telegram.texts(chat)) == 2
    assert telegram.errors == []


async def test_photos_telegram_refuses_are_logged_and_the_text_stands(
    telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    # A group whose members may not send media: Telegram refuses every photo.
    service, _, _ = make_service(
        generator=EchoGenerator(replies=["Hi team!"]), explainer=PictureExplainer()
    )
    rights = "Bad Request: not enough rights to send photos to the chat"
    telegram.refuse_next("sendPhoto", rights, times=2)
    chat = GROUP["id"]
    with caplog.at_level(logging.WARNING, logger="bots.telegram"):
        async with running(telegram, service):
            telegram.push(group_message("@parley_bot hello"))
            await answered(telegram, chat, 1)
            telegram.push(group_message("/explain"))
            await telegram.wait_until(lambda: len(telegram.calls_to("sendPhoto")) == 2)
            await telegram.settle(quiet=0.3)
    answer, explained = telegram.texts(chat)
    assert answer == "Hi team!"
    assert explained.startswith(LINE)  # not an apology, and sent once
    assert len(telegram.calls_to("sendMessage")) == 2
    assert telegram.photos(chat) == []
    refusals = [r.getMessage() for r in caplog.records if "picture" in r.getMessage()]
    assert len(refusals) == 2
    assert "explain.png" in refusals[0]
    assert "mood.png" in refusals[1]
    assert all("not enough rights to send photos" in r.lower() for r in refusals)


async def test_a_picture_that_is_no_image_is_skipped_and_the_next_one_sent(
    telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    explainer = PictureExplainer(chart=b"<html>not a picture</html>")
    service, _, _ = make_service(generator=EchoGenerator(replies=["Sure."]), explainer=explainer)
    chat = ADA["id"]
    async with running(telegram, service):
        telegram.push(private_message("Really?"))
        await answered(telegram, chat, 1)
        telegram.push(private_message("/explain"))
        await telegram.wait_until(lambda: telegram.photos(chat))
        await telegram.settle(quiet=0.2)
    assert [p.data for p in telegram.photos(chat)] == [explainer.mood]
    assert telegram.errors == [("sendPhoto", 400, "Bad Request: IMAGE_PROCESS_FAILED")]
    assert len(telegram.texts(chat)) == 2
    assert "could not send picture explain.png" in caplog.text
    assert "image_process_failed" in caplog.text.lower()  # PTB words Telegram's answer so


# ------------------------------------------------------------------- odd input, errors


async def test_empty_and_huge_messages_get_clear_answers(telegram: FakeTelegram) -> None:
    service, _, generator = make_service()
    async with running(telegram, service):
        telegram.push(group_message("@parley_bot"))
        empty = await replied(telegram, GROUP["id"], 1)
        telegram.push(private_message("x" * 1_000_000))
        huge = await replied(telegram, ADA["id"], 1)
    assert empty == ["I got an empty message. Type a question, or /help to see what I can do."]
    assert huge[0].startswith("Your message is too long: 1,000,000 characters")
    assert generator.requests == []


async def test_bots_and_edited_messages_are_ignored(telegram: FakeTelegram) -> None:
    service, store, _ = make_service()
    async with running(telegram, service, webhook_url=WEBHOOK_URL, webhook_secret=SECRET) as bot:
        statuses = [
            await bot.handle_webhook(json.dumps(update).encode(), SECRET)
            for update in (
                private_message("hello from a bot", sender=OTHER_BOT),
                group_message("@parley_bot hi from a bot", sender=OTHER_BOT),
                edited(private_message("hello, edited")),
            )
        ]
        await telegram.settle(quiet=0.2)
    assert statuses == [200, 200, 200]
    assert telegram.calls_to("sendMessage") == []
    assert history(store, ADA["id"]) == []


async def test_a_photo_gets_an_explanation(telegram: FakeTelegram) -> None:
    service, _, generator = make_service()
    async with running(telegram, service):
        telegram.push(photo_message("what is this?"))
        (text,) = await replied(telegram, ADA["id"], 1)
        telegram.push(photo_message(chat=GROUP))  # not addressed in a group: no answer
        await telegram.settle(quiet=0.2)
    assert "photo" in text
    assert telegram.texts(GROUP["id"]) == []
    assert generator.requests == []


async def test_a_failing_model_gets_an_apology(telegram: FakeTelegram) -> None:
    service, _, _ = make_service(generator=EchoGenerator(fail_with=RuntimeError("boom")))
    async with running(telegram, service):
        telegram.push(private_message("hello"))
        (text,) = await replied(telegram, ADA["id"], 1)
    assert text.startswith("Sorry, something went wrong")


async def test_a_model_failing_mid_answer_keeps_what_was_shown_and_apologises(
    telegram: FakeTelegram,
) -> None:
    generator = BreakingGenerator(replies=["one two three four five"], words=3)
    service, _, _ = make_service(generator=generator)
    async with running(telegram, service):
        telegram.push(private_message("hello"))
        await telegram.wait_until(lambda: "Sorry" in "".join(telegram.texts(ADA["id"])))
        await telegram.settle(quiet=0.2)
    (shown,) = telegram.messages(ADA["id"])
    assert shown.text.startswith("one two three\n\nSorry, something went wrong")
    assert shown.buttons == []  # an apology is not an answer to rate


async def test_a_send_failure_is_logged_and_apologised_for(
    telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    # Telegram refuses every send of the answer; the adapter logs it and says sorry.
    service, _, _ = make_service(generator=EchoGenerator(replies=["fine"]))
    telegram.strict = True
    original = telegram._api_sendMessage

    async def refuse_answers(params: dict[str, Any]) -> Any:
        if params.get("text") == "fine":
            from tests.fakes.telegram_server import _error

            return _error(400, "Bad Request: chat not found")
        return await original(params)

    telegram._api_sendMessage = refuse_answers  # type: ignore[method-assign]
    async with running(telegram, service):
        telegram.push(private_message("hello"))
        (text,) = await replied(telegram, ADA["id"], 1)
    assert text.startswith("Sorry, something went wrong")
    assert "replying in Telegram chat" in caplog.text
    assert "chat not found" in caplog.text.lower()


# ---------------------------------------------------------------------- delivered once


async def test_a_redelivered_update_is_answered_once(telegram: FakeTelegram) -> None:
    service, _, generator = make_service()
    update = private_message("only once, please")
    async with running(telegram, service):
        telegram.push(update)
        await answered(telegram, ADA["id"], 1)
    # Parley restarts, and Telegram delivers the same update again.
    async with running(telegram, service):
        telegram.push(update, redeliver=True)
        await telegram.wait_until(lambda: telegram.calls_to("getUpdates")[-1].params.get("offset"))
        await telegram.settle(quiet=0.3)
    assert len(telegram.messages(ADA["id"])) == 1
    assert len(generator.requests) == 1


# ----------------------------------------------------------------------------- webhook


@asynccontextmanager
async def webhook_client(
    telegram: FakeTelegram, service: ConversationService
) -> AsyncIterator[httpx.AsyncClient]:
    async with running(telegram, service, webhook_url=WEBHOOK_URL, webhook_secret=SECRET) as bot:
        app = Starlette(routes=bot.routes())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://web") as client:
            yield client


async def test_webhook_mode_registers_the_webhook_and_answers(telegram: FakeTelegram) -> None:
    service, _, _ = make_service(generator=EchoGenerator(replies=["Webhook works."]))
    update = private_message("hello over the webhook")
    async with webhook_client(telegram, service) as client:
        assert telegram.webhook is not None
        assert telegram.webhook["url"] == WEBHOOK_URL
        assert telegram.webhook["secret_token"] == SECRET
        assert telegram.calls_to("getUpdates") == []
        started = time.monotonic()
        response = await client.post(WEBHOOK_PATH, json=update, headers={SECRET_HEADER: SECRET})
        assert response.status_code == 200
        assert time.monotonic() - started < 1.0
        again = await client.post(WEBHOOK_PATH, json=update, headers={SECRET_HEADER: SECRET})
        assert again.status_code == 200  # a redelivery is acknowledged, not answered
        await answered(telegram, ADA["id"], 1)
        await telegram.settle(quiet=0.2)
    assert telegram.texts(ADA["id"]) == ["Webhook works."]


async def test_the_web_app_mounts_and_starts_the_adapter(
    telegram: FakeTelegram, tmp_path: Path
) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp_path,
        telegram_token=SecretStr(telegram.token),
        telegram_api_url=telegram.api_url,
        telegram_webhook_url=WEBHOOK_URL,
        telegram_webhook_secret=SecretStr(SECRET),
    )
    service, store, generator = make_service(generator=EchoGenerator(replies=["Via the app."]))
    app = create_app(
        Parley(settings, store, generator, service), [build_telegram(service, settings)]
    )
    async with app.router.lifespan_context(app):
        assert telegram.webhook is not None
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://web") as client:
            response = await client.post(
                WEBHOOK_PATH, json=private_message("hi"), headers={SECRET_HEADER: SECRET}
            )
            assert response.status_code == 200
            await answered(telegram, ADA["id"], 1)
    assert telegram.texts(ADA["id"]) == ["Via the app."]


@pytest.mark.parametrize("secret", [None, "", "wrong", SECRET + "x"])
async def test_webhook_without_the_secret_is_refused(
    telegram: FakeTelegram, secret: str | None
) -> None:
    service, _, generator = make_service()
    update = private_message("let me in")
    headers = {} if secret is None else {SECRET_HEADER: secret}
    async with webhook_client(telegram, service) as client:
        refused = await client.post(WEBHOOK_PATH, json=update, headers=headers)
        await telegram.settle(quiet=0.2)
        assert refused.status_code == 403
        assert generator.requests == []
        assert telegram.calls_to("sendMessage") == []
        # Nothing was claimed: the genuine delivery of the same update is answered.
        ok = await client.post(WEBHOOK_PATH, json=update, headers={SECRET_HEADER: SECRET})
        assert ok.status_code == 200
        await replied(telegram, ADA["id"], 1)


@pytest.mark.parametrize(
    "body", [b"{not json", b"[1, 2]", b'{"message": {}}', b'{"update_id": "7"}', b"\xff\xfe"]
)
async def test_webhook_with_a_malformed_body_is_a_bad_request(
    telegram: FakeTelegram, body: bytes
) -> None:
    service, _, _ = make_service()
    async with webhook_client(telegram, service) as client:
        response = await client.post(WEBHOOK_PATH, content=body, headers={SECRET_HEADER: SECRET})
    assert response.status_code == 400
    assert telegram.calls_to("sendMessage") == []


async def test_webhook_with_a_huge_body_is_refused_unread(telegram: FakeTelegram) -> None:
    service, _, _ = make_service()
    body = json.dumps(private_message("x" * (2 << 20))).encode()
    async with webhook_client(telegram, service) as client:
        response = await client.post(WEBHOOK_PATH, content=body, headers={SECRET_HEADER: SECRET})
    assert response.status_code == 413
    assert telegram.calls_to("sendMessage") == []


async def test_webhook_with_the_database_down_asks_telegram_to_retry(
    telegram: FakeTelegram,
) -> None:
    service, _, generator = make_service(store=DownStore())
    async with webhook_client(telegram, service) as client:
        response = await client.post(
            WEBHOOK_PATH, json=private_message("anyone?"), headers={SECRET_HEADER: SECRET}
        )
        await telegram.settle(quiet=0.2)
    assert response.status_code == 503
    assert telegram.calls_to("sendMessage") == []
    assert generator.requests == []


async def test_webhook_before_start_asks_telegram_to_retry(telegram: FakeTelegram) -> None:
    service, _, _ = make_service()
    adapter = TelegramAdapter(
        make_inbox(service), options_for(telegram, webhook_url=WEBHOOK_URL, webhook_secret=SECRET)
    )
    body = json.dumps(private_message("early")).encode()
    assert await adapter.handle_webhook(body, SECRET) == 503


# ---------------------------------------------------------------------------- start-up


async def test_the_token_stays_out_of_the_logs(
    telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    service, _, _ = make_service()
    with caplog.at_level(logging.DEBUG):
        async with running(telegram, service):
            telegram.push(private_message("hello"))
            await replied(telegram, ADA["id"], 1)
    assert "HTTP Request" in caplog.text
    assert telegram.token not in caplog.text


async def test_a_refused_token_is_a_configuration_error(telegram: FakeTelegram) -> None:
    service, _, _ = make_service()
    adapter = TelegramAdapter(make_inbox(service), options_for(telegram, token="999:wrong"))
    with pytest.raises(ConfigurationError, match="PARLEY_TELEGRAM_TOKEN"):
        await adapter.start()


def test_the_entry_point_without_a_token_says_so_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.delenv("PARLEY_TELEGRAM_TOKEN", raising=False)
    assert telegram_main.main([]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("parley: PARLEY_TELEGRAM_TOKEN is not set")
    assert len(err.splitlines()) == 1


def test_the_entry_point_refuses_to_poll_away_a_webhook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PARLEY_TELEGRAM_TOKEN", "123:abc")
    monkeypatch.setenv("PARLEY_TELEGRAM_WEBHOOK_URL", WEBHOOK_URL)
    monkeypatch.setenv("PARLEY_TELEGRAM_WEBHOOK_SECRET", SECRET)
    assert telegram_main.main([]) == 2
    assert "python -m bots.web" in capsys.readouterr().err
