"""Reading the files of a stored message when its turn comes: the first step of its answer.

A voice note or an image is stored with its answer job and its intake before the platform
is acknowledged (:mod:`core.intake`); :class:`StoredFiles` then does, for the conversation
service's path of files (:mod:`core.file_messages`), what must happen before the job can be
answered::

    first, said = await files.read_into(accepted, message_id)
    # said is a Reply: nothing to answer (not readable, refused); the job has ended
    # else a Message: the text read replaced the stored one; answer message_id

The text read is screened like a typed one (moderation); the person's turn (one answer at a
time) was taken when the message was accepted and is handed on with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

from core.accepted import Accepted
from core.media import MediaError, MediaIntake, heading, nothing_read, turn_text
from core.safety import Safety
from core.sentiment import Sentiment
from core.store import Store
from core.types import Message, Reply, ReplyKind, UserProfile, UserRef

__all__ = ["StoredFiles"]

log = logging.getLogger(__name__)

Learn = Callable[[UserRef, str, int], UserProfile]
ReadSentiment = Callable[[str], Awaitable[Sentiment | None]]


class StoredFiles:
    """Reads a stored message's files into its text, or ends its job when that fails."""

    def __init__(
        self,
        *,
        store: Store,
        media: MediaIntake,
        safety: Safety,
        max_chars: int,
        learn: Learn,
        sentiment: ReadSentiment,
    ) -> None:
        self._sentiment = sentiment
        self._store = store
        self._media = media
        self._safety = safety
        self._max_chars = max_chars
        self._learn = learn

    async def read_into(self, accepted: Accepted, message_id: int) -> tuple[str, Message | Reply]:
        """Read the files and put the text read in the stored message's place.

        Returns the heading of the answer (what was heard or read) and the message as said
        (its text the text read), to answer; or a reply that ended its job (nothing
        readable, or the text refused). Anything else that fails ends the job, and is raised;
        when cancelled, the intake is left as it is for another process to take over.
        """
        try:
            return await self._read_into(accepted, message_id)
        except Exception:
            await self._end(accepted, message_id, "reading its files failed")
            raise

    async def renew(self, message_id: int) -> None:
        """Keep the intake of ``message_id`` with this process (until cancelled)."""
        lease = self._media.lease_seconds
        while True:
            await asyncio.sleep(lease / 3)
            try:
                await asyncio.to_thread(self._store.renew_intake, message_id, lease)
            except Exception:  # the database may be back by the next renewal
                log.warning("could not renew the intake of message %s", message_id)

    async def _read_into(self, accepted: Accepted, message_id: int) -> tuple[str, Message | Reply]:
        message = accepted.message
        try:
            readings = await self._media.read(accepted.media)
        except MediaError as exc:
            log.info("refused a %s in %s: %s", exc.reason, message.key.encode(), exc)
            return "", await self._unread(accepted, message_id, str(exc), ReplyKind.ERROR)
        empty = nothing_read(readings)
        if empty is not None:
            return "", await self._unread(accepted, message_id, empty, ReplyKind.NOTICE)
        text = turn_text(readings, message.text)
        said = replace(message, text=text, attachments=())
        if len(text) > self._max_chars:
            refusal = (
                f"That is {len(text):,} characters, and I take at most {self._max_chars:,}. "
                "Please send a shorter one."
            )
            return "", await self._unread(accepted, message_id, refusal, ReplyKind.ERROR)
        # Moderation and the prompt guard read what was said; the turn is held already.
        screening = await replace(self._safety, limits=None).screen(said, text)
        if screening.refusal is not None:
            refused = await self._unread(accepted, message_id, screening.refusal, ReplyKind.ERROR)
            return "", refused
        store = self._store
        sentiment = await self._sentiment(text)
        await asyncio.to_thread(store.intake_read, message_id, text, sentiment)
        try:
            await asyncio.to_thread(self._learn, message.user, text, message_id)
        except Exception:  # learning a fact is a bonus; the message is accepted
            log.exception("learning from message %s failed", message_id)
        return heading(readings), said

    async def _unread(
        self, accepted: Accepted, message_id: int, text: str, kind: ReplyKind
    ) -> Reply:
        """Forget a message whose files gave nothing to answer (as if never stored, as a
        refused text is never stored), let the person's turn go, and reply ``text``."""
        try:
            await asyncio.to_thread(self._store.discard_intake, message_id)
        finally:
            await self._safety.finish(accepted.message.user, accepted.busy)
        return Reply(kind=kind, text=text)

    async def _end(self, accepted: Accepted, message_id: int, reason: str) -> None:
        """Fail the job and let the person's turn go (best effort)."""
        store = self._store
        try:
            await asyncio.to_thread(store.fail_job, message_id, reason)
        except Exception:
            log.exception("could not end the job of message %s", message_id)
        await self._safety.finish(accepted.message.user, accepted.busy)
