"""The outbox: every accepted message's reply reaches the person once, whatever process dies.

Delivering is part of an answer job's life (:class:`core.jobs.DeliveryStore`). The
process that accepts a message holds the delivery of its job from the moment it is stored,
and renews that hold while it lives; the live reply records the platform messages it
sends as soon as each exists, and marks the job delivered when the reply is shown::

    outbox = Outbox(store, answerer=answerer, reply_for=responder.reply_for)
    service = ConversationService(..., answerer=outbox.answering(answerer))
    inbox = Inbox(service, ..., outbox=outbox)   # follows each live reply
    outbox.add(telegram_adapter.deliverer())     # a Deliverer per platform
    await outbox.start()                         # renew the holds, sweep
    ...
    await outbox.stop(); ...; await outbox.release()   # at shutdown

The sweeper runs at start and every ``sweep_seconds``: a reply whose holder died (its hold
ran out) is delivered here, through the platform's :class:`Deliverer`. When the dead
process had already sent some of it, the new renderer edits those messages to the full
reply (👍/👎 included) instead of sending a second one; when it had sent nothing, it sends
it. A job still being answered is streamed from its answerer; an ended one is shown as
stored. Replies of one conversation are delivered in order, one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import aclosing
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from core.jobs import DeliveryHold, DeliveryStore, Job
from core.responder import APOLOGY, Answerer
from core.streaming import ReplyRenderer, Streamed
from core.types import ConversationKey, Reply, ReplyKind, StoredMessage

__all__ = [
    "Deliverer",
    "Following",
    "Outbox",
    "OutboxOptions",
    "OutboxStore",
    "ReportsShown",
    "ShownCallback",
    "Target",
    "process_holder",
]

log = logging.getLogger(__name__)

ShownCallback = Callable[[tuple[str, ...]], Awaitable[None]]
"""Told the ids of a reply's platform messages each time they change."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxOptions:
    """How deliveries are held and swept; built from the settings."""

    lease_seconds: float = 30.0
    """How long a process's hold lasts unless renewed (how soon a dead one's is taken over)."""
    sweep_seconds: float = 5.0
    """How often holds are renewed and undelivered replies looked for."""
    batch: int = 100
    """The most undelivered replies one sweep takes on."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where a stored reply goes, and what of it the platform shows already."""

    key: ConversationKey
    quote: str | None
    """The platform's id of the message answered (a group reply quotes it)."""
    in_group: bool
    shown: tuple[str, ...] = ()
    """The platform messages a dead process sent of this reply: edit them, send no new."""


class Deliverer(Protocol):
    """What a platform's adapter offers the outbox: renderers for replies stored earlier."""

    @property
    def platform(self) -> str:
        """The platform whose conversations it delivers to (``ConversationKey.platform``)."""
        ...

    def renderer(self, target: Target) -> ReplyRenderer:
        """A renderer that shows a reply at ``target``, continuing its ``shown`` messages."""
        ...


@runtime_checkable
class ReportsShown(Protocol):
    """A renderer that says which platform messages show its reply, as soon as each exists."""

    def report_shown(self, callback: ShownCallback) -> None:
        """Call ``callback`` with the message ids whenever they change."""
        ...


class OutboxStore(DeliveryStore, Protocol):
    """What the outbox needs of the store."""

    def message(self, message_id: int) -> StoredMessage | None: ...

    def mark_delivered(self, message_id: int, platform_message_id: str) -> None: ...


def process_holder() -> str:
    """A name for this process's holds, unique across machines and restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


_FOLLOWING: ContextVar[Following | None] = ContextVar("parley_outbox_following", default=None)


class Following:
    """One live reply the outbox follows: which job it answers, what it has sent."""

    def __init__(self, outbox: Outbox, renderer: ReplyRenderer) -> None:
        self._outbox = outbox
        self._renderer = renderer
        self.message_id: int | None = None

    def noted(self, message_id: int) -> None:
        """The reply answers the job of ``message_id`` (told by the answerer)."""
        self.message_id = message_id
        self._outbox.report_to(self._renderer, message_id)

    async def delivered(self) -> None:
        """The reply reached the person (or its apology did): mark its job delivered."""
        if self.message_id is not None:
            await self._outbox.finish(self.message_id)


class _Noting:
    """An answerer that tells the reply being followed which job it answers."""

    def __init__(self, inner: Answerer) -> None:
        self._inner = inner

    def answer(self, message_id: int) -> Streamed[Reply]:
        following = _FOLLOWING.get()
        if following is not None:
            following.noted(message_id)
        return self._inner.answer(message_id)

    async def stop(self, message_id: int) -> None:
        await self._inner.stop(message_id)


class Outbox:
    """Holds this process's deliveries, follows its live replies and sweeps for orphans."""

    def __init__(
        self,
        store: OutboxStore,
        *,
        answerer: Answerer,
        reply_for: Callable[[Job], Reply | None],
        options: OutboxOptions | None = None,
        holder: str | None = None,
    ) -> None:
        self._store = store
        self._answerer = answerer
        self._reply_for = reply_for
        self.options = options or OutboxOptions()
        self.holder = holder or process_holder()
        self._deliverers: dict[str, Deliverer] = {}
        self._busy: set[ConversationKey] = set()
        self._work: set[asyncio.Task[None]] = set()
        self._sweeping: asyncio.Task[None] | None = None
        self._beating: asyncio.Task[None] | None = None
        store.hold_deliveries(DeliveryHold(self.holder, self.options.lease_seconds))

    # ---- the live replies ---------------------------------------------------------------

    def answering(self, answerer: Answerer) -> Answerer:
        """``answerer``, telling the followed reply which job it answers (give it the service)."""
        return _Noting(answerer)

    @contextlib.contextmanager
    def follow(self, renderer: ReplyRenderer) -> Iterator[Following]:
        """Follow the live reply rendered by ``renderer`` while the block runs."""
        following = Following(self, renderer)
        token = _FOLLOWING.set(following)
        try:
            yield following
        finally:
            _FOLLOWING.reset(token)

    def report_to(self, renderer: ReplyRenderer, message_id: int) -> None:
        """Have ``renderer`` record its platform messages on the job of ``message_id``."""
        if not isinstance(renderer, ReportsShown):
            return

        async def record(shown: tuple[str, ...]) -> None:
            try:
                store, holder = self._store, self.holder
                await asyncio.to_thread(store.record_shown, message_id, holder, shown)
            except Exception:
                log.exception("could not record the messages that show message %s", message_id)

        renderer.report_shown(record)

    async def take(self, message_id: int) -> bool:
        """Hold the delivery of the reply to ``message_id`` for a reply shown by this process
        on its own (the intake resumer's); False when it is delivered or held elsewhere."""
        job = await asyncio.to_thread(
            self._store.claim_delivery,
            message_id,
            self.holder,
            lease_seconds=self.options.lease_seconds,
        )
        return job is not None

    async def finish(self, message_id: int) -> None:
        """Mark the job's reply delivered (best effort: else it is delivered once more)."""
        try:
            await asyncio.to_thread(self._store.finish_delivery, message_id, self.holder)
        except Exception:
            log.exception("could not record that the reply to message %s was delivered", message_id)

    # ---- the sweeper --------------------------------------------------------------------

    def add(self, deliverer: Deliverer) -> None:
        """Deliver orphaned replies on ``deliverer``'s platform too."""
        self._deliverers[deliverer.platform] = deliverer

    async def start(self) -> None:
        """Renew this process's holds and sweep, now and every ``sweep_seconds``."""
        if self._beating is None:
            self._beating = asyncio.create_task(self._beat(), name="outbox-renew")
        if self._sweeping is None and self._deliverers:
            self._sweeping = asyncio.create_task(self._sweep_often(), name="outbox-sweep")

    async def stop(self) -> None:
        """Stop sweeping, and cancel the deliveries it started (they stay pending)."""
        await _cancel(self._sweeping, *self._work)
        self._sweeping = None

    async def release(self) -> None:
        """Stop renewing and let go of this process's holds, for the next process to take."""
        await _cancel(self._beating)
        self._beating = None
        try:
            released = await asyncio.to_thread(self._store.release_deliveries, self.holder)
        except Exception:
            log.exception("could not release the deliveries held here")
            return
        if released:
            log.info("released %d undelivered replies for another process", released)

    async def sweep(self) -> int:
        """Start delivering the orphaned replies found now; how many were found."""
        platforms = sorted(self._deliverers)
        limit = self.options.batch
        jobs = await asyncio.to_thread(self._store.undelivered, platforms, limit=limit)
        queues: dict[ConversationKey, list[int]] = {}
        for job in jobs:
            if job.key not in self._busy:
                queues.setdefault(job.key, []).append(job.message_id)
        for key, message_ids in queues.items():
            self._busy.add(key)
            task = asyncio.create_task(self._deliver_all(key, message_ids))
            self._work.add(task)
            task.add_done_callback(self._work.discard)
        return len(jobs)

    async def deliver(self, message_id: int) -> bool:
        """Deliver the reply to ``message_id`` here if its delivery is free; True if it was."""
        store = self._store
        lease = self.options.lease_seconds
        job = await asyncio.to_thread(
            store.claim_delivery, message_id, self.holder, lease_seconds=lease
        )
        deliverer = self._deliverers.get(job.key.platform) if job is not None else None
        if job is None or deliverer is None:
            return False
        asked = await asyncio.to_thread(store.message, message_id)
        quote = asked.platform_message_id if asked is not None else None
        renderer = deliverer.renderer(Target(job.key, quote, job.in_group, job.shown))
        self.report_to(renderer, message_id)
        log.warning(
            "delivering the reply to message %s left by a process that stopped (%s)",
            message_id,
            f"continuing {len(job.shown)} sent message(s)" if job.shown else "none sent",
        )
        try:
            reply = await self._reply(job, renderer)
            shown = await renderer.finish(reply)
        except Exception:
            log.exception("delivering the reply to message %s failed", message_id)
            await renderer.fail(APOLOGY)
        else:
            if reply.kind is ReplyKind.ANSWER and reply.answer_id is not None and shown:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(store.mark_delivered, reply.answer_id, shown)
        await self.finish(message_id)
        return True

    async def _reply(self, job: Job, renderer: ReplyRenderer) -> Reply:
        """The job's reply: as stored when it ended, else streamed from its answerer."""
        if job.status.ended:
            reply = await asyncio.to_thread(self._reply_for, job)
            return reply or Reply(kind=ReplyKind.ERROR, text=APOLOGY)
        async with aclosing(self._answerer.answer(job.message_id)) as stream:
            async for delta in stream:
                await renderer.add(delta)
            return stream.result

    async def _deliver_all(self, key: ConversationKey, message_ids: Sequence[int]) -> None:
        """Deliver one conversation's orphaned replies in order."""
        try:
            for message_id in message_ids:
                await self.deliver(message_id)
        except Exception:
            log.exception("delivering replies in %s failed; trying again later", key.encode())
        finally:
            self._busy.discard(key)

    async def _sweep_often(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("looking for undelivered replies failed; trying again later")
            await asyncio.sleep(self.options.sweep_seconds)

    async def _beat(self) -> None:
        store, holder, lease = self._store, self.holder, self.options.lease_seconds
        while True:
            try:
                await asyncio.to_thread(store.renew_deliveries, holder, lease_seconds=lease)
            except Exception:
                log.exception("could not renew the deliveries held here")
            await asyncio.sleep(self.options.sweep_seconds)


async def _cancel(*tasks: asyncio.Task[None] | None) -> None:
    """Cancel the tasks and wait until they have ended."""
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)
