"""/retry and /cancel through the real Telegram and Slack adapters, against the fake servers."""

from __future__ import annotations

import asyncio

import pytest

from core.jobs import JobStatus
from core.store import Store
from core.turn_commands import NOTHING_TO_CANCEL, NOTHING_TO_RETRY, STOPPED_NOTE
from core.types import ConversationKey, Role, StoredMessage
from tests.factories import make_service
from tests.fakes.slack import BOT_USER, TEAM, FakeSlack, app_mention, dm
from tests.fakes.telegram import ADA, FakeTelegram, private_message
from tests.slack_fixtures import GOOD, harness
from tests.slack_fixtures import PacedGenerator as SlackPaced
from tests.telegram_fixtures import PacedGenerator, answered, button_data, replied, running

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

LONG = " ".join(f"w{i}" for i in range(400))


def questions(store: Store, key: ConversationKey) -> list[StoredMessage]:
    return [t for t in store.history(key, 100) if t.role is Role.USER]


def answer_id(data: str) -> int:
    return int(data.split(":")[1])


# --------------------------------------------------------------------------- Telegram


async def test_retry_on_telegram_gives_a_second_answer_with_its_own_buttons(
    telegram: FakeTelegram,
) -> None:
    replies = ["Four, I think.", "2 + 2 = 4."]
    service, store, _ = make_service(generator=PacedGenerator(replies=list(replies)))
    chat = ADA["id"]
    async with running(telegram, service):
        telegram.push(private_message("/retry"))
        assert await replied(telegram, chat, 1) == [NOTHING_TO_RETRY]
        telegram.push(private_message("What is 2 + 2?"))
        await answered(telegram, chat, 1)
        telegram.push(private_message("/retry"))
        first, second = await answered(telegram, chat, 2)
        await telegram.settle(quiet=0.2)
    assert first.text == replies[0]
    assert second.text.startswith("🔁 Another answer to “What is 2 + 2?”")
    assert second.text.endswith(replies[1])
    first_id = answer_id(button_data(first, "👍"))
    second_id = answer_id(button_data(second, "👍"))
    assert first_id != second_id
    # Both answers are stored, each answering its own copy of the question.
    for shown_id in (first_id, second_id):
        stored = store.answer(shown_id)
        assert stored is not None
    key = ConversationKey("telegram", None, str(chat), None)
    assert [q.text for q in questions(store, key)] == ["What is 2 + 2?"] * 2
    assert len(telegram.messages(chat)) == 3  # the notice and two answers, nothing more


async def test_cancel_on_telegram_stops_a_streamed_answer_once(telegram: FakeTelegram) -> None:
    generator = PacedGenerator(replies=[LONG], delay=0.02)
    service, store, _ = make_service(generator=generator, max_new_tokens=500)
    chat = ADA["id"]
    async with running(telegram, service):
        telegram.push(private_message("/cancel"))
        assert await replied(telegram, chat, 1) == [NOTHING_TO_CANCEL]
        telegram.push(private_message("Tell me everything."))
        await telegram.wait_until(lambda: len(telegram.messages(chat)) == 2)
        telegram.push(private_message("/cancel"))
        [stopped] = await answered(telegram, chat, 1)
        await telegram.wait_until(lambda: "OK, I stopped my answer." in telegram.texts(chat))
        telegram.push(private_message("And now?"))
        answers = await answered(telegram, chat, 2)
        await telegram.settle(quiet=0.2)
    assert stopped.text.endswith("\n\n" + STOPPED_NOTE)
    assert stopped.text.startswith("w0 w1")
    assert len(stopped.text.split()) < 300
    assert answers[1].text == "You said: And now?"
    texts = telegram.texts(chat)
    assert texts.count("OK, I stopped my answer.") == 1
    assert len(texts) == 4  # two notices, the stopped answer, the next answer
    key = ConversationKey("telegram", None, str(chat), None)
    asked, _ = questions(store, key)
    job = store.job(asked.id)
    assert job is not None
    assert job.status is JobStatus.DONE
    assert job.attempts == 1
    assert job.answer_id == answer_id(button_data(stopped, "👍"))
    stored = store.answer(job.answer_id)
    assert stored is not None
    assert stored.message.text.endswith(STOPPED_NOTE)
    assert len(generator.requests) == 2


# --------------------------------------------------------------------------- Slack


async def test_parley_retry_on_slack_answers_again_in_the_dm(slack: FakeSlack) -> None:
    h = harness(slack, replies=["Paris.", "The capital of France is Paris."])
    await h.command("retry")
    assert [m.shown for m in h.slack.in_thread("D1", None)] == [NOTHING_TO_RETRY]
    await h.send(dm("capital of France?"))
    await h.command("retry")
    _, first, second = h.slack.in_thread("D1", None)
    assert first.shown == "Paris."
    assert second.shown.endswith("The capital of France is Paris.")
    assert "capital of France?" in second.shown
    first_id, second_id = (int(m.buttons[0]["value"]) for m in (first, second))
    assert first_id != second_id
    assert second.buttons[0]["action_id"] == GOOD
    assert [role for role, _ in h.history()] == [Role.USER, Role.ASSISTANT] * 2


async def test_retry_in_a_slack_thread_answers_there(slack: FakeSlack) -> None:
    h = harness(slack, replies=["One answer.", "Another answer."])
    await h.send(app_mention(f"<@{BOT_USER}> what is up?"))
    [first] = h.slack.posted("C1")
    thread = first.args["thread_ts"]
    await h.send(app_mention(f"<@{BOT_USER}> /retry", thread_ts=thread))
    shown = h.slack.in_thread("C1", thread)
    assert len(shown) == 2
    assert shown[0].shown == "One answer."
    assert shown[1].shown.endswith("Another answer.")
    assert shown[0].buttons[0]["value"] != shown[1].buttons[0]["value"]
    assert len(h.store.history(ConversationKey("slack", TEAM, "C1", thread), 100)) == 4


async def test_parley_cancel_on_slack_stops_the_answer(slack: FakeSlack) -> None:
    h = harness(slack, generator=SlackPaced(replies=[LONG], delay=0.02), max_new_tokens=500)
    await h.sender.event(dm("Tell me everything."))
    for _ in range(500):
        if h.slack.in_thread("D1", None):
            break
        await asyncio.sleep(0.01)
    await h.command("cancel")
    [stopped] = h.slack.in_thread("D1", None)
    assert stopped.shown.endswith(STOPPED_NOTE)
    assert len(stopped.shown.split()) < 300
    assert [r["text"] for _, r in h.slack.responses] == ["OK, I stopped my answer."]
    await h.send(dm("And now?"))
    assert h.slack.in_thread("D1", None)[-1].shown == "a paced answer"
