"""Translating Telegram messages, button data and settings (no network)."""

from __future__ import annotations

from typing import Any

import pytest
import telegram
from pydantic import SecretStr

from bots.telegram import TelegramOptions
from bots.telegram.buttons import feedback_keyboard, parse_feedback_data
from bots.telegram.inbound import BotIdentity, to_message
from config.settings import Settings
from core.errors import ConfigurationError
from core.types import Rating
from tests.fakes.telegram import (
    ADA,
    BOT,
    GROUP,
    group_message,
    photo_message,
    private_message,
    topic_message,
)

ME = BotIdentity(id=BOT["id"], username=BOT["username"])


def translate(update: dict[str, Any]) -> Any:
    return to_message(telegram.Message.de_json(update["message"], None), ME)


def test_a_private_message() -> None:
    update = private_message("Hello there")
    message = translate(update)
    assert message.platform == "telegram"
    assert message.chat == str(ADA["id"])
    assert message.user.id == str(ADA["id"])
    assert message.user.display_name == "Ada Lovelace"
    assert message.text == "Hello there"
    assert message.message_id == str(update["message"]["message_id"])
    assert message.sent_at.tzinfo is not None
    assert (message.is_group, message.mentions_bot, message.reply_to_bot) == (False, False, False)
    assert (message.thread, message.workspace, message.reply_to, message.media) == (
        None,
        None,
        None,
        (),
    )


@pytest.mark.parametrize(
    ("text", "stripped"),
    [
        ("@parley_bot what's up?", "what's up?"),
        ("@parley_bot, what's up?", "what's up?"),
        ("@Parley_Bot: hi", "hi"),
        ("hey @parley_bot, what's up?", "hey, what's up?"),
        ("what's up @parley_bot", "what's up"),
        ("🙂🙂 @parley_bot after emoji", "🙂🙂 after emoji"),
        ("@parley_bot", ""),
        ("ask @parley_bot or @parley_bot", "ask or"),
    ],
)
def test_a_mention_of_the_bot_is_noted_and_removed(text: str, stripped: str) -> None:
    message = translate(group_message(text))
    assert message.is_group
    assert message.mentions_bot
    assert message.text == stripped


def test_a_mention_of_someone_else_is_kept() -> None:
    message = translate(group_message("ask @someone_else about it"))
    assert not message.mentions_bot
    assert message.text == "ask @someone_else about it"


def test_a_text_mention_of_the_bot_counts() -> None:
    entity = {"type": "text_mention", "offset": 0, "length": 6, "user": BOT}
    message = translate(group_message("Parley, help", entities=[entity]))
    assert message.mentions_bot
    assert message.text == "help"


def test_a_reply_to_the_bot_and_to_someone_else() -> None:
    bot_message = {"message_id": 5, "from": BOT, "chat": GROUP, "date": 0, "text": "hi"}
    to_bot = translate(group_message("thanks", reply_to=bot_message))
    assert to_bot.reply_to_bot
    assert to_bot.reply_to == "5"
    ada_message = {**bot_message, "from": ADA}
    to_ada = translate(group_message("thanks", reply_to=ada_message))
    assert not to_ada.reply_to_bot
    assert to_ada.reply_to == "5"


def test_a_forum_topic_is_its_own_thread_and_not_a_reply() -> None:
    message = translate(topic_message("@parley_bot hi", 77))
    assert message.thread == "77"
    assert message.reply_to is None
    assert not message.reply_to_bot


@pytest.mark.parametrize(
    ("text", "for_us"),
    [("/help", True), ("/help@parley_bot", True), ("/help@other_bot", False)],
)
def test_commands_for_another_bot_are_not_for_parley(text: str, for_us: bool) -> None:
    message = translate(group_message(text))
    assert (message is not None) is for_us
    if message is not None:
        assert message.text == text  # the core reads /cmd@bot itself


def test_media_become_kinds_with_the_caption_as_text() -> None:
    message = translate(photo_message("@parley_bot what is this?", chat=GROUP))
    assert message.media == ("photo",)
    assert message.text == "what is this?"
    assert message.mentions_bot
    update = private_message(None, voice={"file_id": "v", "file_unique_id": "v", "duration": 2})
    assert translate(update).media == ("voice",)
    animation = {"file_id": "a", "file_unique_id": "a", "width": 1, "height": 1, "duration": 1}
    document = {"file_id": "a", "file_unique_id": "a"}
    update = private_message(None, animation=animation, document=document)
    assert translate(update).media == ("animation",)


def test_service_messages_are_not_for_parley() -> None:
    update = private_message(None, new_chat_members=[ADA])
    assert translate(update) is None


def test_feedback_buttons_round_trip() -> None:
    markup = feedback_keyboard(42)
    (row,) = markup.inline_keyboard
    assert [b.text for b in row] == ["👍", "👎"]
    assert [parse_feedback_data(b.callback_data) for b in row] == [  # type: ignore[arg-type]
        (42, Rating.GOOD),
        (42, Rating.BAD),
    ]


@pytest.mark.parametrize(
    "data", [None, "", "fb", "fb:x:good", "fb:1:fine", "xx:1:good", "fb:-1:good", "fb:\u0661:good"]
)
def test_malformed_button_data_is_none(data: str | None) -> None:
    assert parse_feedback_data(data) is None


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_options_from_settings() -> None:
    options = TelegramOptions.from_settings(
        settings(
            telegram_token=SecretStr(" 1:abc "), telegram_api_url="http://local:8081/bot"
        ).telegram
    )
    assert options.token == "1:abc"
    assert options.file_url == "http://local:8081/file/bot"
    assert not options.webhook
    assert "1:abc" not in repr(options)


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({}, "PARLEY_TELEGRAM_TOKEN is not set"),
        (
            {"telegram_token": "1:a", "telegram_webhook_url": "https://x/telegram/webhook"},
            "PARLEY_TELEGRAM_WEBHOOK_SECRET is not",
        ),
        (
            {"telegram_token": "1:a", "telegram_webhook_secret": "not allowed!"},
            "PARLEY_TELEGRAM_WEBHOOK_SECRET must be",
        ),
    ],
)
def test_unusable_settings_are_one_clear_error(values: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        TelegramOptions.from_settings(settings(**values).telegram)
