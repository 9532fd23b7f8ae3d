"""Replies on Telegram while they are written: paced edits, 429s, long answers, pictures."""

from __future__ import annotations

import itertools
import logging

import pytest

from bots.text import FENCE, utf16_len
from core.generator import EchoGenerator
from tests.factories import make_service
from tests.fakes.explainer import LINE, PictureExplainer
from tests.fakes.telegram import (
    ADA,
    FORUM,
    GROUP,
    FakeTelegram,
    group_message,
    private_message,
    topic_message,
)
from tests.telegram_fixtures import (
    PacedGenerator,
    answered,
    running,
)

# PTB itself warns when it builds a RetryAfter from an integer; the adapter handles both forms.
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


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
