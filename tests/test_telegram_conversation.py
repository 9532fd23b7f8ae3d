"""A person talks with Parley on Telegram: turns, buttons, groups and forum topics."""

from __future__ import annotations

import pytest

from bots.telegram.adapter import BAD_BUTTON
from core.commands import COMMANDS
from core.generator import EchoGenerator
from core.types import ConversationKey, Rating, Role
from tests.factories import make_service
from tests.fakes.telegram import (
    ADA,
    BOB,
    FORUM,
    GROUP,
    FakeTelegram,
    callback_query,
    group_message,
    private_message,
    topic_message,
)
from tests.telegram_fixtures import (
    PacedGenerator,
    answered,
    button_data,
    history,
    replied,
    running,
    with_buttons,
)

# PTB itself warns when it builds a RetryAfter from an integer; the adapter handles both forms.
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


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
