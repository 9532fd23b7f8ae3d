"""Slack payloads to Parley's :class:`core.types.Message`: pure translation, no I/O.

Usage::

    threads = ThreadMemory()
    message = translate_event(body, bot_user_id="U0BOT", threads=threads)
    if message is not None:
        receipt = await inbox.receive(Incoming(message, event_id=...), renderer_for)

Which conversation a Slack message belongs to:

* a direct message: the DM (``thread=None``), or the DM thread it was written in;
* an app mention in a channel: the thread it starts (its own ``ts``) or is part of;
* a thread reply without a mention: that thread, and ``reply_to_bot`` when Parley has
  answered in the thread (Slack has no "reply to a message" other than threads).

Slack delivers a channel message that mentions Parley twice, as ``app_mention`` and as
``message``: only the ``app_mention`` is translated. Bots (Parley included), edits,
deletions and other subtypes translate to ``None``.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from core.types import ConversationKey, Message, UserRef, utcnow

__all__ = [
    "PLATFORM",
    "LastThreads",
    "ThreadMemory",
    "command_message",
    "from_slack_text",
    "mentions",
    "translate_event",
]

PLATFORM = "slack"

_ACCEPTED_SUBTYPES = {None, "file_share", "thread_broadcast"}
_MENTION = r"<@{user}(?:\|[^>]*)?>"


class ThreadMemory:
    """The channel threads Parley has answered in, newest kept (a bounded set)."""

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._keys: OrderedDict[ConversationKey, None] = OrderedDict()

    def add(self, key: ConversationKey) -> None:
        """Remember that Parley answers in this thread."""
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self._size:
            self._keys.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        return key in self._keys


class LastThreads:
    """Each person's latest thread with Parley per channel, for slash commands (bounded).

    Slack sends a slash command without the thread it was typed in, so ``/parley explain``
    in a channel acts on the thread where Parley last answered that person.
    """

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._threads: OrderedDict[tuple[str | None, str, str], str] = OrderedDict()

    def note(self, message: Message) -> None:
        """Remember the thread of a channel message Parley answers."""
        if message.is_group and message.thread is not None:
            where = (message.workspace, message.chat, message.user.id)
            self._threads[where] = message.thread
            self._threads.move_to_end(where)
            while len(self._threads) > self._size:
                self._threads.popitem(last=False)

    def of(self, workspace: str | None, chat: str, user: str) -> str | None:
        """The person's latest thread with Parley in a channel, or ``None``."""
        return self._threads.get((workspace, chat, user))


def mentions(text: str, user_id: str) -> bool:
    """True when ``text`` holds Slack's ``<@user_id>`` mention markup."""
    return re.search(_MENTION.format(user=re.escape(user_id)), text) is not None


def from_slack_text(text: str, bot_user_id: str | None) -> str:
    """The text as the person meant it: Parley's mention removed, Slack's escapes undone."""
    if bot_user_id:
        text = re.sub(_MENTION.format(user=re.escape(bot_user_id)), " ", text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def _str(mapping: Mapping[str, Any], name: str) -> str | None:
    value = mapping.get(name)
    return value if isinstance(value, str) and value else None


def _sent_at(ts: str) -> datetime:
    try:
        return datetime.fromtimestamp(float(ts), UTC)
    except (ValueError, OverflowError):
        return utcnow()


def translate_event(
    body: Mapping[str, Any], *, bot_user_id: str | None, threads: ThreadMemory
) -> Message | None:
    """The message in an Events API ``event_callback``, or ``None`` when it is not for Parley."""
    event = body.get("event")
    if not isinstance(event, Mapping):
        return None
    kind = event.get("type")
    if kind not in ("message", "app_mention"):
        return None
    subtype = event.get("subtype")
    if not isinstance(subtype, str | None) or subtype not in _ACCEPTED_SUBTYPES:
        return None
    if event.get("bot_id"):
        return None
    user = _str(event, "user")
    channel = _str(event, "channel")
    ts = _str(event, "ts")
    if user is None or channel is None or ts is None or user == bot_user_id:
        return None
    raw = event.get("text")
    raw = raw if isinstance(raw, str) else ""
    channel_type = _str(event, "channel_type")
    direct = channel_type == "im" if channel_type else channel.startswith("D")
    mentioned = bot_user_id is not None and mentions(raw, bot_user_id)
    thread_ts = _str(event, "thread_ts")
    if kind == "app_mention":
        if direct:
            return None  # the same message arrives as message.im
        thread: str | None = thread_ts or ts
    elif direct:
        thread = thread_ts
    elif mentioned:
        return None  # the same message arrives as app_mention
    else:
        thread = thread_ts
    workspace = _str(body, "team_id") or _str(event, "team")
    key = ConversationKey(PLATFORM, workspace, channel, thread)
    in_reply = not direct and thread_ts is not None and thread_ts != ts
    reply_to_bot = in_reply and (
        (bot_user_id is not None and event.get("parent_user_id") == bot_user_id) or key in threads
    )
    files = event.get("files")
    media = _media(files) if isinstance(files, list) and files else ()
    if not media and event.get("subtype") == "file_share":
        media = ("file",)
    return Message(
        platform=PLATFORM,
        workspace=workspace,
        chat=channel,
        thread=thread,
        user=UserRef(PLATFORM, user),
        text=from_slack_text(raw, bot_user_id),
        message_id=ts,
        sent_at=_sent_at(ts),
        is_group=not direct,
        mentions_bot=kind == "app_mention" or mentioned,
        reply_to_bot=reply_to_bot,
        media=media,
    )


def _media(files: list[Any]) -> tuple[str, ...]:
    """The kinds of the shared files: "audio", "image", else "file"."""
    kinds = []
    for file in files:
        mime = file.get("mimetype") if isinstance(file, Mapping) else None
        major = mime.partition("/")[0] if isinstance(mime, str) else ""
        kinds.append(major if major in ("audio", "image") else "file")
    return tuple(dict.fromkeys(kinds))


def command_message(command: Mapping[str, Any], last: LastThreads) -> Message | None:
    """A ``/parley sub-command args`` as the core's ``/sub-command args``; ``None`` if malformed.

    A bare ``/parley`` is ``/help``. In a DM it acts on the DM; in a channel on the thread
    where Parley last answered the person (see :class:`LastThreads`), else the channel.
    """
    user = _str(command, "user_id")
    channel = _str(command, "channel_id")
    if user is None or channel is None:
        return None
    raw = command.get("text")
    text = from_slack_text(raw if isinstance(raw, str) else "", None).lstrip("/")
    workspace = _str(command, "team_id")
    direct = channel.startswith("D")
    return Message(
        platform=PLATFORM,
        workspace=workspace,
        chat=channel,
        thread=None if direct else last.of(workspace, channel, user),
        user=UserRef(PLATFORM, user, _str(command, "user_name")),
        text="/" + (text or "help"),
        is_group=not direct,
        mentions_bot=True,  # a slash command is addressed to Parley by definition
    )
