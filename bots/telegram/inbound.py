"""Telegram messages in, core :class:`~core.types.Message` out: who is addressed, what was sent.

Pure translation, no network: the adapter calls :func:`to_message` for every message a
person sent and hands the result to the core, which decides whether to answer::

    message = to_message(update.message, BotIdentity(id=bot.id, username=bot.username))
    if message is not None:
        receipt = await inbox.receive(Incoming(message, event_id=...), renderer_for)

A forum topic is its own conversation (``thread`` is the topic id); a mention of the bot
is removed from the text; media become ``media`` kinds with the caption as text.
"""

from __future__ import annotations

from dataclasses import dataclass

import telegram
from telegram.constants import ChatType, MessageEntityType

from core.types import Message, UserRef

__all__ = ["PLATFORM", "BotIdentity", "to_message", "user_ref"]

PLATFORM = "telegram"

# Attribute of a Telegram message -> the media kind the core names it by. Order matters:
# Telegram sets ``document`` as well on animations, so the more specific kind comes first.
_MEDIA = (
    ("photo", "photo"),
    ("voice", "voice"),
    ("audio", "audio"),
    ("animation", "animation"),
    ("video", "video"),
    ("video_note", "video"),
    ("document", "document"),
    ("sticker", "sticker"),
    ("location", "location"),
    ("venue", "location"),
    ("contact", "contact"),
    ("poll", "poll"),
    ("dice", "dice"),
    ("story", "story"),
    ("paid_media", "paid media"),
)


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """The bot as Telegram knows it, to recognise mentions of it and replies to it."""

    id: int
    username: str


def user_ref(user: telegram.User) -> UserRef:
    """A Telegram user as the core knows people."""
    return UserRef(platform=PLATFORM, id=str(user.id), display_name=user.full_name or None)


def to_message(message: telegram.Message, me: BotIdentity) -> Message | None:
    """The core's view of a person's message; ``None`` when there is nothing for Parley.

    ``None`` for service messages (someone joined, a pin, a topic created, ...) and for
    commands addressed to another bot (``/help@OtherBot``).
    """
    sender = message.from_user
    if sender is None:
        return None
    if message.text is not None:
        text, entities = message.text, message.entities
    else:
        text, entities = message.caption or "", message.caption_entities
    media = _media(message)
    if message.text is None and not media:
        return None
    mentioned: list[telegram.MessageEntity] = []
    for entity in entities:
        if entity.type == MessageEntityType.MENTION:
            name = _slice(text, entity.offset, entity.length)
            if name.lower() == f"@{me.username}".lower():
                mentioned.append(entity)
        elif entity.type == MessageEntityType.TEXT_MENTION:
            if entity.user is not None and entity.user.id == me.id:
                mentioned.append(entity)
        elif entity.type == MessageEntityType.BOT_COMMAND and entity.offset == 0:
            _, _, addressee = _slice(text, 0, entity.length).partition("@")
            if addressee and addressee.lower() != me.username.lower():
                return None
    reply = message.reply_to_message
    # In a forum every message of a topic "replies" to the topic's first (service) message:
    # that is where it was posted, not whom it answers.
    in_topic = bool(message.is_topic_message)
    if reply is not None and in_topic and reply.message_id == message.message_thread_id:
        reply = None
    replier = reply.from_user if reply is not None else None
    return Message(
        platform=PLATFORM,
        chat=str(message.chat.id),
        thread=str(message.message_thread_id) if in_topic else None,
        user=user_ref(sender),
        text=_without(text, mentioned),
        message_id=str(message.message_id),
        sent_at=message.date,
        is_group=message.chat.type != ChatType.PRIVATE,
        mentions_bot=bool(mentioned),
        reply_to=str(reply.message_id) if reply is not None else None,
        reply_to_bot=replier is not None and replier.id == me.id,
        media=media,
    )


def _media(message: telegram.Message) -> tuple[str, ...]:
    """The kind of non-text content a message carries (at most one on Telegram)."""
    for attribute, kind in _MEDIA:
        if getattr(message, attribute, None):
            return (kind,)
    return ()


def _slice(text: str, offset: int, length: int) -> str:
    """Part of ``text`` by Telegram's entity offsets, which count UTF-16 code units."""
    encoded = text.encode("utf-16-le")
    return encoded[offset * 2 : (offset + length) * 2].decode("utf-16-le")


def _without(text: str, entities: list[telegram.MessageEntity]) -> str:
    """``text`` with the entities' spans removed and the seams tidied."""
    if not entities:
        return text
    encoded = text.encode("utf-16-le")
    pieces: list[str] = []
    position = 0
    for entity in sorted(entities, key=lambda e: e.offset):
        pieces.append(encoded[position * 2 : entity.offset * 2].decode("utf-16-le"))
        position = entity.offset + entity.length
    pieces.append(encoded[position * 2 :].decode("utf-16-le"))
    result = pieces[0]
    for piece in pieces[1:]:
        result = _join(result, piece)
    return result.strip()


def _join(left: str, right: str) -> str:
    """Glue the text around a removed mention: "@bot, hi" -> "hi"; "hey @bot, hi" -> "hey, hi".

    Punctuation right after a mention at the start belonged to the mention ("@bot: hi").
    """
    left, right = left.rstrip(" "), right.lstrip(" ")
    if not left.strip():
        return right.lstrip(",:;").lstrip()
    if not right or right[0] in ",.:;!?\n":
        return left + right
    return left + " " + right
