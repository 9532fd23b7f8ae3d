"""Messages with files through the conversation service: accepted, read, then answered.

The service hands a message with files here (:class:`FileMessages`) once the media intake
has let its files in. Files with a platform reference are stored with the message, its job
and its intake before the acknowledgement (:meth:`FileMessages.accept`), and read when the
message's turn comes (:meth:`FileMessages.reply`, through :class:`core.reading.StoredFiles`);
others are read after the acknowledgement, and the text read is then taken as the person's
turn, as if typed. Either way the answer starts with what was heard or read, so that the
person can correct it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import replace

from core.accepted import Accepted, ready
from core.intake import FileRef
from core.media import MediaError, MediaIntake, heading, nothing_read, turn_text
from core.reading import Learn, ReadSentiment, StoredFiles
from core.safety import Safety
from core.store import Store
from core.types import Message, Reply, ReplyKind

__all__ = ["FileMessages", "unreadable"]

log = logging.getLogger(__name__)

AcceptText = Callable[[Message, str], Awaitable[Accepted]]
"""The service taking a message's text as the person's turn (run it, or store it)."""
Replies = Callable[[Accepted], AsyncGenerator[str | Reply, None]]
"""The service's reply to an accepted message: text as it streams, then the reply."""
Spell = Callable[[str, str], str]
"""A reply's text with commands spelled the way the platform types them."""


class FileMessages:
    """The conversation service's path for a message with files, from accepting to answering."""

    def __init__(
        self,
        *,
        store: Store,
        media: MediaIntake,
        safety: Safety,
        max_chars: int,
        learn: Learn,
        sentiment: ReadSentiment,
        spell: Spell,
        accept_text: AcceptText,
        replies: Replies,
    ) -> None:
        """The service's parts, and its own steps that a message with files goes through too."""
        self._store = store
        self._media = media
        self._safety = safety
        self._max_chars = max_chars
        self._files = StoredFiles(
            store=store,
            media=media,
            safety=safety,
            max_chars=max_chars,
            learn=learn,
            sentiment=sentiment,
        )
        self._spell = spell
        self._accept_text = accept_text
        self._replies = replies

    async def accept(self, message: Message) -> Accepted:
        """Store a message with files, its job and its intake: read once it is its turn.

        It holds the person's turn (one answer at a time) from now, as a text would.
        """
        files = tuple(FileRef.of(item) for item in message.attachments)
        screening = await self._safety.screen(message, message.text.strip())
        if screening.refusal is not None:
            return ready(message, screening.refusal, kind=ReplyKind.ERROR)
        try:
            asked = await asyncio.to_thread(
                self._store.store_with_files, message, files, self._media.lease_seconds
            )
        except BaseException:
            await self._safety.finish(message.user, screening.busy)
            raise
        return Accepted(
            message, message_id=asked.id, media=message.attachments, busy=screening.busy
        )

    async def reply(self, accepted: Accepted) -> AsyncGenerator[str | Reply, None]:
        """Read an accepted message's files, then answer it: stored ones in its turn."""
        if accepted.message_id is not None:
            replies = self._read_stored(accepted, accepted.message_id)
        else:
            replies = self._read_then_reply(accepted)
        async with aclosing(replies):
            async for item in replies:
                yield item

    async def _read_then_reply(self, accepted: Accepted) -> AsyncGenerator[str | Reply, None]:
        """Read the message's files, take the text as the person's turn, and answer it.

        The answer starts with what was heard or read, so that the person can correct it.
        """
        message = accepted.message
        try:
            readings = await self._media.read(accepted.media)
        except MediaError as exc:
            log.info("refused a %s in %s: %s", exc.reason, message.key.encode(), exc)
            yield str(exc)
            yield Reply(kind=ReplyKind.ERROR, text=str(exc))
            return
        empty = nothing_read(readings)
        if empty is not None:
            yield empty
            yield Reply(text=empty)
            return
        text = turn_text(readings, message.text)
        said = replace(message, text=text, attachments=())
        if len(text) > self._max_chars:
            taken = ready(
                said,
                f"That is {len(text):,} characters, and I take at most "
                f"{self._max_chars:,}. Please send a shorter one.",
                kind=ReplyKind.ERROR,
            )
        else:
            taken = await self._accept_text(said, text)
        first = heading(readings)
        yield first
        async with aclosing(self._replies(taken)) as replies:
            async for item in replies:
                yield replace(item, text=first + item.text) if isinstance(item, Reply) else item

    async def _read_stored(
        self, accepted: Accepted, message_id: int
    ) -> AsyncGenerator[str | Reply, None]:
        """Read the files of a stored message (its intake), then answer its job.

        The intake's lease is renewed meanwhile, so that no other process takes it over.
        """
        files = self._files
        renewing = asyncio.ensure_future(files.renew(message_id))
        try:
            intake = await asyncio.to_thread(self._store.intake, message_id)
            taken = replace(accepted, media=())
            first = ""
            if intake is not None and not intake.read:
                first, said = await files.read_into(accepted, message_id)
                if isinstance(said, Reply):
                    reply = replace(said, text=self._spell(accepted.message.platform, said.text))
                    yield reply.text
                    yield reply
                    return
                taken = replace(taken, message=said)
                yield first
            async with aclosing(self._replies(taken)) as replies:
                async for item in replies:
                    yield replace(item, text=first + item.text) if isinstance(item, Reply) else item
        finally:
            renewing.cancel()


def unreadable(message: Message, *, reading: bool) -> str:
    """The reply to files of kinds that are not read: why, and to type the question instead.

    ``reading``: whether this process reads any files at all (it has a media intake).
    """
    kinds = " and ".join(dict.fromkeys(message.media))
    return (
        (
            "I read text, voice messages, audio files and images, but I can't "
            f"open {kinds} messages. "
            if reading
            else f"I can only read text for now, so I can't open {kinds} messages yet. "
        )
        + "Please type your question"
        + (" (I did not read the caption)." if message.text.strip() else ".")
    )
