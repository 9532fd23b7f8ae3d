"""A fake Telegram Bot API server, for the real python-telegram-bot client to talk to.

It serves ``/bot<TOKEN>/<method>`` on 127.0.0.1 (a free port), records every call, keeps
the bot's messages per chat as a person would see them, and enforces the Telegram rules
Parley must respect (message length in UTF-16 units, no edit that changes nothing, valid
button data, photos that are pictures). Tests script it: queue updates for getUpdates, make
the next calls of a method fail with 429 or be refused, and read what reached the chat::

    async with FakeTelegram() as telegram:
        options = TelegramOptions(token=telegram.token, api_url=telegram.api_url)
        telegram.push(private_message("hello"))
        await telegram.wait_until(lambda: telegram.texts(ADA["id"]))
        telegram.refuse_next("sendPhoto", "Bad Request: not enough rights to send photos")
        assert telegram.photos(ADA["id"])[0].data.startswith(b"PNG")

Photos (``sendPhoto``, a multipart upload) are kept apart from text messages: read them
with :meth:`FakeTelegram.photos`; :meth:`FakeTelegram.messages` and ``texts`` show text only.

Files people send (voice notes, photos) are held with :meth:`FakeTelegram.add_file`; the
client finds them with ``getFile`` and downloads them from ``/file/bot<TOKEN>/<file_path>``
as from Telegram (``getFile`` refuses files over 20 MB, as the Bot API does)::

    file_id = telegram.add_file(ogg_bytes)
    telegram.push(voice_message(file_id, duration=3, size=len(ogg_bytes)))

The module-level builders (:func:`private_message`, :func:`group_message`,
:func:`topic_message`, :func:`photo_message`, :func:`callback_query`, ...) return updates as
the JSON dicts Telegram sends. Updates and messages are numbered from shared counters, so
the ids of people's and the bot's messages never collide.
"""

from __future__ import annotations

from tests.fakes.telegram.records import (
    ADA,
    BOB,
    BOT,
    FORUM,
    GROUP,
    OTHER_BOT,
    Call,
    SentMessage,
    SentPhoto,
    Upload,
)
from tests.fakes.telegram.server import FakeTelegram
from tests.fakes.telegram.updates import (
    callback_query,
    edited,
    group_message,
    photo_message,
    private_message,
    text_message,
    topic_message,
    voice_message,
)

__all__ = [
    "ADA",
    "BOB",
    "BOT",
    "FORUM",
    "GROUP",
    "OTHER_BOT",
    "Call",
    "FakeTelegram",
    "SentMessage",
    "SentPhoto",
    "Upload",
    "callback_query",
    "edited",
    "group_message",
    "photo_message",
    "private_message",
    "text_message",
    "topic_message",
    "voice_message",
]
