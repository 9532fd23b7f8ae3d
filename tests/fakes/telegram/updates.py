"""Updates as the JSON Telegram sends: people's messages, topics, photos, voice, buttons."""

from __future__ import annotations

import time
from typing import Any

from tests.fakes.telegram.records import (
    _COMMAND,
    _MENTION,
    ADA,
    FORUM,
    GROUP,
    _message_ids,
    _update_ids,
    _utf16,
)

# ---------------------------------------------------------------------- update builders


def _entities(text: str) -> list[dict[str, Any]]:
    """The entities Telegram's servers find in a typed text: @mentions and a /command."""
    found: list[dict[str, Any]] = []
    command = _COMMAND.match(text)
    if command is not None:
        found.append({"type": "bot_command", "offset": 0, "length": _utf16(command.group())})
    for match in _MENTION.finditer(text):
        offset = _utf16(text[: match.start()])
        found.append({"type": "mention", "offset": offset, "length": _utf16(match.group())})
    return found


def text_message(
    text: str | None,
    *,
    chat: dict[str, Any],
    sender: dict[str, Any] = ADA,
    entities: list[dict[str, Any]] | None = None,
    reply_to: dict[str, Any] | None = None,
    thread_id: int | None = None,
    update_id: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An update with a new message; entities are found in the text as Telegram does."""
    message: dict[str, Any] = {
        "message_id": next(_message_ids),
        "from": sender,
        "chat": chat,
        "date": int(time.time()),
        **extra,
    }
    if text is not None:
        message["text"] = text
        found = _entities(text) if entities is None else entities
        if found:
            message["entities"] = found
    if reply_to is not None:
        message["reply_to_message"] = reply_to
    if thread_id is not None:
        message["message_thread_id"] = thread_id
        message["is_topic_message"] = True
        if reply_to is None:
            # As in Telegram: a topic message "replies" to the topic's creation message.
            message["reply_to_message"] = {
                "message_id": thread_id,
                "from": ADA,
                "chat": chat,
                "date": int(time.time()),
                "forum_topic_created": {"name": "Topic", "icon_color": 7322096},
                "message_thread_id": thread_id,
                "is_topic_message": True,
            }
    return {
        "update_id": update_id if update_id is not None else next(_update_ids),
        **{"message": message},
    }


def private_message(text: str | None, *, sender: dict[str, Any] = ADA, **kw: Any) -> dict[str, Any]:
    """A message in the sender's private chat with the bot."""
    chat = {"id": sender["id"], "type": "private", "first_name": sender["first_name"]}
    return text_message(text, chat=chat, sender=sender, **kw)


def group_message(text: str | None, *, chat: dict[str, Any] = GROUP, **kw: Any) -> dict[str, Any]:
    """A message in a group; write "@parley_bot" in the text to mention the bot."""
    return text_message(text, chat=chat, **kw)


def topic_message(text: str | None, thread_id: int, **kw: Any) -> dict[str, Any]:
    """A message in one topic of a forum supergroup."""
    return text_message(text, chat=FORUM, thread_id=thread_id, **kw)


def photo_message(
    caption: str | None = None,
    *,
    chat: dict[str, Any] | None = None,
    file_id: str = "photo-1",
    size: int | None = None,
    **kw: Any,
) -> dict[str, Any]:
    """A photo, with an optional caption, in a private chat unless ``chat`` says otherwise.

    Telegram sends each photo in several sizes; here a thumbnail and ``file_id`` (the largest).
    """
    sender = kw.pop("sender", ADA)
    chat = chat or {"id": sender["id"], "type": "private", "first_name": sender["first_name"]}
    largest: dict[str, Any] = {"file_id": file_id, "file_unique_id": "p1", "width": 900}
    largest["height"] = 200
    if size is not None:
        largest["file_size"] = size
    thumbnail = {"file_id": "thumb-1", "file_unique_id": "t1", "width": 90, "height": 20}
    extra: dict[str, Any] = {"photo": [thumbnail, largest]}
    if caption is not None:
        extra["caption"] = caption
        found = _entities(caption)
        if found:
            extra["caption_entities"] = found
    return text_message(None, chat=chat, sender=sender, **extra, **kw)


def voice_message(
    file_id: str,
    *,
    duration: int,
    size: int,
    chat: dict[str, Any] | None = None,
    **kw: Any,
) -> dict[str, Any]:
    """A voice note (OGG/Opus) held by :meth:`FakeTelegram.add_file`, in a private chat."""
    sender = kw.pop("sender", ADA)
    chat = chat or {"id": sender["id"], "type": "private", "first_name": sender["first_name"]}
    voice = {
        "file_id": file_id,
        "file_unique_id": f"u{file_id}",
        "duration": duration,
        "mime_type": "audio/ogg",
        "file_size": size,
    }
    return text_message(None, chat=chat, sender=sender, voice=voice, **kw)


def edited(update: dict[str, Any]) -> dict[str, Any]:
    """The same message, edited: Telegram sends it as an ``edited_message`` update."""
    message = {**update["message"], "edit_date": int(time.time())}
    return {"update_id": next(_update_ids), "edited_message": message}


def callback_query(
    data: str, message: dict[str, Any], *, sender: dict[str, Any] = ADA
) -> dict[str, Any]:
    """A press of an inline button with ``data`` under the bot's ``message``."""
    return {
        "update_id": next(_update_ids),
        "callback_query": {
            "id": f"cq-{next(_update_ids)}",
            "from": sender,
            "chat_instance": "chat-instance-1",
            "data": data,
            "message": message,
        },
    }
