"""What the fake Telegram keeps: the bot, people and chats, and each call and message."""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass, field
from typing import Any

TOKEN = "123456:TEST-fake-telegram-token"
BOT: dict[str, Any] = {
    "id": 4242,
    "is_bot": True,
    "first_name": "Parley",
    "username": "parley_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
ADA: dict[str, Any] = {"id": 111, "is_bot": False, "first_name": "Ada", "last_name": "Lovelace"}
BOB: dict[str, Any] = {"id": 222, "is_bot": False, "first_name": "Bob"}
OTHER_BOT: dict[str, Any] = {
    "id": 999,
    "is_bot": True,
    "first_name": "Other",
    "username": "other_bot",
}
GROUP: dict[str, Any] = {"id": -100500, "type": "supergroup", "title": "Team"}
FORUM: dict[str, Any] = {"id": -100600, "type": "supergroup", "title": "Forum", "is_forum": True}

MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024
PHOTO_LIMIT = 10 * 1024 * 1024  # bytes; Telegram's most for a photo sent by upload
DOWNLOAD_LIMIT = 20 * 1024 * 1024  # bytes; the most a bot may download through getFile
DOCUMENT_LIMIT = 50 * 1024 * 1024  # bytes; Telegram's most for a file sent by upload
_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
# Parameters that arrive JSON-encoded in a form field.
_JSON_FIELDS = {
    "reply_markup",
    "link_preview_options",
    "reply_parameters",
    "entities",
    "commands",
    "allowed_updates",
    "scope",
}
_INT_FIELDS = {"chat_id", "message_id", "message_thread_id", "offset", "limit", "timeout"}
_MENTION = re.compile(r"(?<![\w@])@[A-Za-z][A-Za-z0-9_]{3,31}")
_COMMAND = re.compile(r"/[A-Za-z0-9_]{1,32}(@[A-Za-z][A-Za-z0-9_]{3,31})?")

_update_ids = itertools.count(1000)
_message_ids = itertools.count(1)


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass(frozen=True, slots=True)
class Upload:
    """A file the client uploaded in a multipart request."""

    filename: str | None
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Call:
    """One Bot API request the client made, and when (``time.monotonic()``)."""

    method: str
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


@dataclass(slots=True)
class SentMessage:
    """A message the bot sent, as the chat shows it now."""

    chat_id: int
    message_id: int
    text: str
    thread_id: int | None = None
    reply_to: int | None = None
    reply_markup: dict[str, Any] | None = None
    edits: int = 0
    deleted: bool = False

    @property
    def buttons(self) -> list[dict[str, Any]]:
        """The inline buttons under the message, in order."""
        if self.reply_markup is None:
            return []
        return [b for row in self.reply_markup.get("inline_keyboard", []) for b in row]


@dataclass(frozen=True, slots=True)
class SentPhoto:
    """A photo the bot sent: the uploaded bytes exactly as received, and where they went."""

    chat_id: int
    message_id: int
    data: bytes
    filename: str | None
    thread_id: int | None = None
    reply_to: int | None = None
    caption: str | None = None


@dataclass(slots=True)
class _Failure:
    times: int
    retry_after: int


@dataclass(slots=True)
class _Flood:
    method: str | None
    retry_after: int
    start: float | None = None  # time.monotonic() of the call that opened the window


@dataclass(slots=True)
class _Refusal:
    times: int
    code: int
    description: str
