"""Taking over the intakes a dead process left: its voice notes and images, answered once.

A message with files is stored with its intake before the platform is acknowledged (see
:mod:`core.intake`); the process that accepted it holds the intake's lease while it reads
and answers. When that process dies, the lease runs out. Every live process's adapter runs
an :class:`IntakeResumer` (at its start, then every so often): it takes each stalled intake
of its platform, downloads the files again through the adapter (``reopen``), reads and
answers them, and then answers the messages of that conversation that waited behind it,
in order, so that a text sent right after a voice note is still answered after it. It holds
each reply's delivery first (:meth:`core.inbox.Inbox.take_delivery`), and the outbox's sweeper
leaves messages with open files alone, so that a reply is shown by one of the two only::

    inbox.keep_resuming("telegram", reopener(bot), renderer_for, every=lease / 2)
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from core.conversation import Accepted
from core.intake import Intake, Reopen, reattach
from core.types import ConversationKey, Message, utcnow

if TYPE_CHECKING:
    from core.inbox import Inbox, RendererFactory

__all__ = ["IntakeResumer"]

log = logging.getLogger(__name__)


class IntakeResumer:
    """Finds a platform's stalled intakes and has the inbox answer them (and what follows)."""

    def __init__(
        self, inbox: Inbox, platform: str, reopen: Reopen, renderer_for: RendererFactory
    ) -> None:
        self._inbox = inbox
        self._platform = platform
        self._reopen = reopen
        self._renderer_for = renderer_for
        service = inbox.service
        self._store = service.store
        self._lease = service.media.lease_seconds if service.media is not None else 60.0

    async def run(self, every: float) -> None:
        """Resume now and every ``every`` seconds, until cancelled."""
        while True:
            try:
                await self.resume()
            except Exception:  # the database may be back next time
                log.exception("looking for stalled %s intakes failed", self._platform)
            await asyncio.sleep(every)

    async def resume(self) -> int:
        """Take over every stalled intake of the platform; how many were taken."""
        store = self._store
        stalled = await asyncio.to_thread(store.stalled_intakes, self._platform, utcnow())
        taken = 0
        for intake in stalled:
            if self._inbox.handles(intake.message_id):
                continue  # this process is at it (its lease renewal was late)
            if not await asyncio.to_thread(store.take_intake, intake.message_id, self._lease):
                continue  # another process was quicker
            if not await self._inbox.take_delivery(intake.message_id):
                # Its reply was delivered (the dead process got that far) or is being delivered.
                await asyncio.to_thread(store.close_intake, intake.message_id)
                continue
            log.warning(
                "taking over the %s message %s left unanswered (files: %d, read: %s)",
                self._platform,
                intake.message_id,
                len(intake.files),
                intake.read,
            )
            self._inbox.later(
                self._inbox.answer_after(self._accepted(intake), self._renderer_for, self._next)
            )
            taken += 1
        return taken

    def _accepted(self, intake: Intake) -> Accepted:
        message = reattach(intake, self._reopen)
        return Accepted(message, message_id=intake.message_id, media=message.attachments)

    async def _next(self, key: ConversationKey, last: int) -> Accepted | None:
        """The next message after ``last`` whose answer was not shown, ready to answer."""
        store = self._store
        waiting = await asyncio.to_thread(store.waiting_after, key, last, limit=1)
        if not waiting:
            return None
        [message_id] = waiting
        if not await self._inbox.take_delivery(message_id):
            return None  # the outbox is delivering it, in its turn
        intake = await asyncio.to_thread(store.intake, message_id)
        if intake is not None:
            taken = await asyncio.to_thread(store.take_intake, message_id, self._lease)
            return self._accepted(intake) if taken else None
        stored = await asyncio.to_thread(store.message, message_id)
        job = await asyncio.to_thread(store.job, message_id)
        if stored is None or stored.user is None or job is None:
            return None
        key = job.key
        message = Message(
            platform=key.platform,
            workspace=key.workspace,
            chat=key.chat,
            thread=key.thread,
            user=stored.user,
            text=stored.text,
            message_id=stored.platform_message_id,
            is_group=job.in_group,
        )
        return Accepted(message, message_id=message_id)
