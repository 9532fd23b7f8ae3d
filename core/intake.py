"""Intakes: the files of an accepted message, kept by reference until its answer is shown.

A voice note or an image is stored before the platform is acknowledged, like any text: the
person's message (its caption as text, for now) with its answer job, and beside it an
:class:`Intake` that names the files by the platform's own reference (a Telegram
``file_id``, a Slack file id), never their bytes. Reading the files is then the first step
of answering the job::

    accept:   message + job + intake (unread, leased)          before the ack
    reply:    read the files → the transcript replaces the text → intake marked read
              answer the job (as for text) → the reply is shown → intake closed

While the intake is unread its job is not claimable (:func:`unread_wait`), so no worker
answers the caption alone and the messages that follow in the conversation wait their
turn behind it. The process that accepted the message holds the intake's lease and renews
it; when that process dies, the lease runs out and a live process (at its start, see
:meth:`core.inbox.Inbox.resume`) takes the intake over: it reads the files again (or not,
if they were read), answers, and shows the answer.

Threads are kept here too: the platform threads Parley takes part in (:class:`ThreadStore`),
so that a follow-up without a mention is answered after a restart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from core.media import Attachment, Fetch, MediaKind
from core.sentiment import Sentiment
from core.types import ConversationKey, Message, StoredMessage, UserRef

__all__ = [
    "FileRef",
    "Intake",
    "IntakeStore",
    "Reopen",
    "ThreadStore",
    "message_from_json",
    "message_to_json",
    "reattach",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class FileRef:
    """One file of a message, as the platform names it: enough to download it again."""

    kind: MediaKind
    ref: str
    mime: str | None = None
    size: int | None = None
    duration: float | None = None
    name: str | None = None

    @classmethod
    def of(cls, attachment: Attachment) -> FileRef:
        """The reference of an attachment (which must carry one)."""
        assert attachment.ref is not None
        return cls(
            kind=attachment.kind,
            ref=attachment.ref,
            mime=attachment.mime,
            size=attachment.size,
            duration=attachment.duration,
            name=attachment.name,
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "kind": str(self.kind),
            "ref": self.ref,
            "mime": self.mime,
            "size": self.size,
            "duration": self.duration,
            "name": self.name,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileRef:
        """Rebuild a reference made by :meth:`to_json`."""
        return cls(
            kind=MediaKind(data["kind"]),
            ref=str(data["ref"]),
            mime=data.get("mime"),
            size=data.get("size"),
            duration=data.get("duration"),
            name=data.get("name"),
        )


Reopen = Callable[[FileRef], Fetch]
"""The adapter's way to download a referenced file again (its client and token behind it)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Intake:
    """The files of one stored message (``message_id``) that are read before it is answered."""

    message_id: int
    message: Message
    """The person's message as it came (without fetchers: see :func:`reattach`)."""
    files: tuple[FileRef, ...]
    read: bool = False
    """True once the text read replaced the message's text."""
    lease_until: datetime | None = None
    created_at: datetime


def message_to_json(message: Message) -> dict[str, Any]:
    """What is kept of a message to answer it in its place later (no fetchers, no bytes)."""
    user = message.user
    return {
        "platform": message.platform,
        "workspace": message.workspace,
        "chat": message.chat,
        "thread": message.thread,
        "user": [user.platform, user.id, user.display_name],
        "text": message.text,
        "message_id": message.message_id,
        "sent_at": message.sent_at.isoformat(),
        "is_group": message.is_group,
        "mentions_bot": message.mentions_bot,
        "reply_to": message.reply_to,
        "reply_to_bot": message.reply_to_bot,
        "media": list(message.media),
    }


def message_from_json(data: dict[str, Any]) -> Message:
    """The message :func:`message_to_json` kept (its attachments are not in it)."""
    platform, user_id, name = data["user"]
    return Message(
        platform=data["platform"],
        workspace=data.get("workspace"),
        chat=data["chat"],
        thread=data.get("thread"),
        user=UserRef(platform, user_id, name),
        text=data.get("text", ""),
        message_id=data.get("message_id"),
        sent_at=datetime.fromisoformat(data["sent_at"]),
        is_group=bool(data.get("is_group")),
        mentions_bot=bool(data.get("mentions_bot")),
        reply_to=data.get("reply_to"),
        reply_to_bot=bool(data.get("reply_to_bot")),
        media=tuple(data.get("media", ())),
    )


def reattach(intake: Intake, reopen: Reopen) -> Message:
    """The intake's message with attachments that download its files again."""
    attachments = tuple(
        Attachment(
            kind=file.kind,
            fetch=reopen(file),
            mime=file.mime,
            size=file.size,
            duration=file.duration,
            name=file.name,
            ref=file.ref,
        )
        for file in intake.files
    )
    return replace(intake.message, attachments=attachments)


class IntakeStore(Protocol):
    """Intakes, beside the messages they belong to (deleted with them)."""

    def store_with_files(
        self, message: Message, files: tuple[FileRef, ...], lease_seconds: float
    ) -> StoredMessage:
        """Store the person's message (its caption as text), its answer job and its intake
        (unread, leased to the caller), in one transaction; return the stored message."""
        ...

    def intake(self, message_id: int) -> Intake | None:
        """The intake of a message, while it is open."""
        ...

    def renew_intake(self, message_id: int, lease_seconds: float) -> None:
        """Extend the caller's lease on an open intake."""
        ...

    def take_intake(self, message_id: int, lease_seconds: float) -> bool:
        """Take over an open intake whose lease ran out; True if this call took it."""
        ...

    def intake_read(self, message_id: int, text: str, sentiment: Sentiment | None) -> None:
        """The files were read: the message's text becomes ``text`` (with how it reads) and
        the intake is marked read, in one transaction."""
        ...

    def close_intake(self, message_id: int) -> None:
        """The answer is shown: forget the intake."""
        ...

    def discard_intake(self, message_id: int) -> None:
        """The files gave nothing to answer: forget the message with its job and intake, as
        if it had never been stored (nothing of a file Parley refused is kept)."""
        ...

    def stalled_intakes(self, platform: str, now: datetime, *, limit: int = 100) -> list[Intake]:
        """Open intakes of one platform whose lease ran out before ``now``, oldest first."""
        ...

    def waiting_after(
        self, key: ConversationKey, message_id: int, *, limit: int = 100
    ) -> list[int]:
        """The conversation's messages after ``message_id`` whose answer was not shown: their
        job has not ended, or it is done and its answer was never marked delivered. In order."""
        ...


class ThreadStore(Protocol):
    """The threads Parley takes part in, so that follow-ups in them are answered."""

    def join_thread(self, key: ConversationKey) -> None:
        """Record that Parley answers in this thread (once; later calls change nothing)."""
        ...

    def in_thread(self, key: ConversationKey) -> bool:
        """Whether Parley has answered in this thread."""
        ...
