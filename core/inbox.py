"""The inbox: every message a platform delivers goes through one call, in one order.

A chat adapter translates a platform event into an :class:`Incoming` (the neutral
:class:`core.types.Message` plus the platform's id for the delivery), hands it to
:meth:`Inbox.receive` with a way to render the reply, and answers its platform with
the :class:`Receipt`::

    inbox = Inbox(service, events=store, conversations=store)
    receipt = await inbox.receive(Incoming(message, event_id="Ev123"), renderer_for)
    status = 503 if receipt is Receipt.RETRY else 200
    ...
    await inbox.close(grace=10)        # on shutdown: let replies in progress finish

The sequence, the same for every platform:

1. **filter**: private chats get an answer to everything; groups when Parley is
   addressed (mentioned, replied to, or given a command). Anything else is ignored.
2. **claim**: the platform's event id is recorded once; a redelivery is ignored.
3. **accept**: the message is stored with its answer job
   (:meth:`ConversationService.accept`), before the platform hears "OK", so that nothing
   acknowledged is lost. When the store is down the claim is released and the receipt
   says :attr:`Receipt.RETRY`: a webhook refuses the event and the platform delivers it
   again. A polled event cannot be refused (``refusable=False``): it is accepted after
   the receipt, and a store failure then gets an apology.
4. **reply**, in the background and in arrival order per conversation (a polled message
   takes its turn before it is accepted): streamed into a
   :class:`core.streaming.ReplyRenderer`; a failure gets an apology.
5. **record**: the platform message that shows an answer is stored, so that replies
   to it can name it; with an :class:`core.outbox.Outbox`, the job is marked delivered
   (and the platform messages it sent are recorded as they are sent), so that a process
   that takes over after this one died neither loses the reply nor sends it twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import aclosing
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from core.commands import parse_command
from core.conversation import APOLOGY, Accepted, ConversationService
from core.errors import StoreError
from core.intake import Reopen
from core.locks import KeyedLocks
from core.outbox import Outbox
from core.resume import IntakeResumer
from core.store import ConversationStore, EventStore
from core.streaming import ReplyRenderer
from core.turn_commands import stops_an_answer
from core.types import ConversationKey, Message, Rating, Reply, ReplyKind, UserRef

__all__ = ["Following", "Inbox", "Incoming", "Receipt", "RendererFactory", "addressed"]

log = logging.getLogger(__name__)

RendererFactory = Callable[[Message], ReplyRenderer]
"""Makes the renderer of one reply; called once the message is taken, when its reply starts."""

Following = Callable[[ConversationKey, int], Awaitable["Accepted | None"]]
"""The next message of a conversation after the given one whose answer was not shown."""


@dataclass(frozen=True, slots=True)
class Incoming:
    """One message as a platform delivered it, in the core's terms."""

    message: Message
    event_id: str | None = None
    """The platform's id of this delivery (Telegram's update_id, Slack's event_id), claimed
    once; ``None`` when the platform gives none (nothing is then de-duplicated)."""
    refusable: bool = True
    """True when the platform delivers the event again if it is refused (webhooks); a
    polled event cannot be refused, so it is accepted after the receipt."""
    complete: Callable[[Message], Awaitable[Message]] | None = None
    """Platform look-ups worth making only for a message Parley answers (Slack's display
    names); run after the filter and the claim, before the message is stored."""


class Receipt(StrEnum):
    """What the platform should hear about an :class:`Incoming`."""

    TAKEN = "taken"
    """Stored (or decided): the reply is under way. Acknowledge."""
    IGNORED = "ignored"
    """Not for Parley, or delivered before. Acknowledge."""
    RETRY = "retry"
    """Could not be stored: refuse it, so that the platform delivers it again."""


def addressed(message: Message) -> bool:
    """Private chats get an answer to everything; groups when Parley is addressed."""
    if not message.is_group:
        return True
    if message.mentions_bot or message.reply_to_bot:
        return True
    return parse_command(message.text.strip()) is not None


class Inbox:
    """Takes platform messages through filter, claim, accept, ordered reply and record."""

    def __init__(
        self,
        service: ConversationService,
        *,
        events: EventStore,
        conversations: ConversationStore,
        outbox: Outbox | None = None,
    ) -> None:
        self._service = service
        self._events = events
        self._conversations = conversations
        self._outbox = outbox
        self._order = KeyedLocks()
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweepers: set[asyncio.Task[None]] = set()
        self._taken: set[int] = set()
        """Stored messages this process accepted and has not replied to yet."""

    @property
    def service(self) -> ConversationService:
        """The conversation service the inbox hands messages to."""
        return self._service

    async def receive(self, incoming: Incoming, renderer_for: RendererFactory) -> Receipt:
        """Take one delivered message; its reply is rendered in the background.

        Raises what accepting the message raised, other than a store failure (the
        event then stays claimed, so that its redeliveries end).
        """
        message = incoming.message
        if not addressed(message):
            return Receipt.IGNORED
        if incoming.event_id is not None:
            try:
                first = await self._claim(message.platform, incoming.event_id)
            except StoreError:
                if incoming.refusable:
                    log.warning("cannot claim %s event %s: store down", *_where(incoming))
                    return Receipt.RETRY
                # A polled event cannot be refused: answering twice beats dropping one.
                log.exception("cannot claim %s event %s; taking it", *_where(incoming))
                first = True
            if not first:
                log.info("%s event %s was delivered before; ignored", *_where(incoming))
                return Receipt.IGNORED
        if stops_an_answer(message):  # /cancel: at once, not in the turn of what it stops
            self.later(self._take_and_reply(incoming, renderer_for))
            return Receipt.TAKEN
        if not incoming.refusable:
            self.later(self._accept_and_answer(incoming, renderer_for))
            return Receipt.TAKEN
        try:
            accepted = await self._service.accept(await _completed(incoming))
        except StoreError:
            log.warning("cannot store %s event %s: store down", *_where(incoming))
            if incoming.event_id is not None:
                await self._release(message.platform, incoming.event_id)
            return Receipt.RETRY
        if accepted.message_id is not None:
            self._taken.add(accepted.message_id)
        self.later(self._answer(accepted, renderer_for))
        return Receipt.TAKEN

    def handles(self, message_id: int | None) -> bool:
        """Whether this process took the stored message and has not replied to it yet."""
        return message_id in self._taken

    async def take_delivery(self, message_id: int) -> bool:
        """Hold the delivery of a reply this process is about to show that another process
        accepted (see :meth:`core.outbox.Outbox.take`); always True without an outbox."""
        return self._outbox is None or await self._outbox.take(message_id)

    def keep_resuming(
        self, platform: str, reopen: Reopen, renderer_for: RendererFactory, every: float
    ) -> None:
        """Take over ``platform``'s stalled intakes now and every ``every`` seconds (see
        :class:`IntakeResumer`); stopped by :meth:`close`."""
        resumer = IntakeResumer(self, platform, reopen, renderer_for)
        task = asyncio.get_running_loop().create_task(resumer.run(every))
        self._sweepers.add(task)

    async def rate(self, answer_id: int, user: UserRef, rating: Rating) -> Reply:
        """A 👍/👎 press on one answer; the reply is the notice to show the presser."""
        return await self._service.rate(answer_id, user, rating)

    def later(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in the background, tracked so that :meth:`close` can wait for it."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait until every reply and other work in progress is done."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self, grace: float) -> None:
        """Let work in progress finish for up to ``grace`` seconds, then cancel the rest."""
        for sweeper in self._sweepers:
            sweeper.cancel()
        await asyncio.gather(*self._sweepers, return_exceptions=True)
        self._sweepers.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drain(), grace)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ---------------------------------------------------------------- the steps

    async def _accept_and_answer(self, incoming: Incoming, renderer_for: RendererFactory) -> None:
        """Accept a polled message after its receipt, then answer it, in its turn."""
        # The turn is taken before accepting, so that the messages are also stored in order.
        async with self._order.hold(incoming.message.key):
            await self._take_and_reply(incoming, renderer_for)

    async def _take_and_reply(self, incoming: Incoming, renderer_for: RendererFactory) -> None:
        """Take a message and reply to it; one that cannot be taken gets the apology."""
        try:
            accepted = await self._service.accept(await _completed(incoming))
        except Exception:
            log.exception("cannot take %s event %s", *_where(incoming))
            await renderer_for(incoming.message).fail(APOLOGY)
            return
        await self._reply(accepted, renderer_for)

    async def _answer(self, accepted: Accepted, renderer_for: RendererFactory) -> None:
        """Answer an accepted message in the conversation's turn."""
        async with self._order.hold(accepted.message.key):
            await self._reply(accepted, renderer_for)

    async def answer_after(
        self, accepted: Accepted, renderer_for: RendererFactory, following: Following
    ) -> None:
        """Answer ``accepted``, then each message ``following`` finds after it, in one turn."""
        async with self._order.hold(accepted.message.key):
            await self._reply(accepted, renderer_for)
            last = accepted.message_id or 0
            while (after := await following(accepted.message.key, last)) is not None:
                if self.handles(after.message_id):
                    break  # what this process took itself is answered in its own turn
                await self._reply(after, renderer_for)
                last = after.message_id or last

    async def _reply(self, accepted: Accepted, renderer_for: RendererFactory) -> None:
        """Stream the reply into its renderer, then record that it was delivered."""
        try:
            renderer = renderer_for(accepted.message)
            if self._outbox is None:
                await self._show(accepted, renderer)
                return
            with self._outbox.follow(renderer) as following:
                await self._show(accepted, renderer)
                await following.delivered()
        finally:
            self._taken.discard(accepted.message_id or 0)

    async def _show(self, accepted: Accepted, renderer: ReplyRenderer) -> None:
        """Stream the reply into its renderer, then record where the answer shows."""
        message = accepted.message
        try:
            async with aclosing(self._service.reply(accepted)) as stream:
                async for delta in stream:
                    await renderer.add(delta)
                reply = stream.result
            shown = await renderer.finish(reply)
        except Exception:
            log.exception(
                "replying in %s chat %s failed (conversation %s)",
                message.platform.capitalize(),
                message.chat,
                message.key.encode(),
            )
            await renderer.fail(APOLOGY)
            await self._closed(accepted)
            return
        if reply.kind is ReplyKind.ANSWER and reply.answer_id is not None and shown is not None:
            await self._delivered(reply.answer_id, shown)
        await self._closed(accepted)

    async def _closed(self, accepted: Accepted) -> None:
        """The reply to a message with files is shown: its intake is done (best effort)."""
        if not accepted.media or accepted.message_id is None:
            return
        try:
            await asyncio.to_thread(self._service.store.close_intake, accepted.message_id)
        except Exception:
            log.exception("could not close the intake of message %s", accepted.message_id)

    async def _claim(self, platform: str, event_id: str) -> bool:
        """True the first time a platform event arrives; False for redeliveries and retries."""
        return await asyncio.to_thread(self._events.claim_event, platform, event_id)

    async def _release(self, platform: str, event_id: str) -> None:
        """Undo a claim for an event that could not be taken after all (best effort)."""
        try:
            await asyncio.to_thread(self._events.release_event, platform, event_id)
        except Exception:
            log.exception("could not release %s event %s", platform, event_id)

    async def _delivered(self, answer_id: int, platform_message_id: str) -> None:
        """Record which platform message shows an answer (best effort)."""
        try:
            await asyncio.to_thread(
                self._conversations.mark_delivered, answer_id, platform_message_id
            )
        except Exception:
            log.exception(
                "could not record that answer %s is message %s", answer_id, platform_message_id
            )


async def _completed(incoming: Incoming) -> Message:
    """The message after the platform's own look-ups, if it has any."""
    if incoming.complete is None:
        return incoming.message
    return await incoming.complete(incoming.message)


def _where(incoming: Incoming) -> tuple[str, str | None]:
    return incoming.message.platform, incoming.event_id
