"""A reply shown while it is written, on any chat platform: send, edit as it grows, split.

:class:`LiveReply` is the part of :class:`core.streaming.ReplyRenderer` that every platform
shares; a platform's subclass only makes its requests (send, edit, delete, upload) and
splits text into the messages it accepts (:mod:`bots.telegram.reply`,
:mod:`bots.slack.reply`)::

    reply = TelegramReply(bot, chat_id, pacer=Pacer(1.0))
    async for delta in stream:
        await reply.add(delta)                  # never waits for the platform
    shown = await reply.finish(stream.result)  # the id of the message with 👍/👎

The first text is sent at once; later text edits it at most once per :class:`Pacer`
interval (never with unchanged text), in a background task, so the model is never held
up by the platform. Text past one message's limit continues in the next. A 429 holds the
pacer for as long as the platform asks: the edits in between are skipped, and
:meth:`LiveReply.finish` always delivers the final text (retrying it), then the reply's
pictures (the ``/explain`` charts), each sent once or not at all.

A reply can continue messages sent earlier (``shown``: their ids, from a process that
died while sending them; see :mod:`core.outbox`): they are edited, never sent again. The
ids of the messages that show the reply are reported as soon as each exists
(:meth:`LiveReply.report_shown`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from core.outbox import ShownCallback
from core.types import Reply, ReplyKind

__all__ = ["EMPTY", "LiveReply", "Pacer", "RateLimited", "Shown"]

log = logging.getLogger(__name__)

EMPTY = "…"
"""What a reply with no visible text shows, so that it is never lost."""

T = TypeVar("T")


class RateLimited(Exception):
    """The platform asked to wait (a 429): the pacer holds the chat for ``seconds``."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"rate-limited for {seconds:.1f} s")
        self.seconds = seconds


class Pacer:
    """Spaces one chat's sends and edits: at most one per ``interval``, longer after a 429."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        """Wait for this chat's next turn to call the platform, and take it."""
        loop = asyncio.get_running_loop()
        async with self._lock:  # replies in one chat take turns, in order
            # A loop, not one sleep: a 429 elsewhere can move the turn while we wait.
            while (delay := self._next - loop.time()) > 0:  # noqa: ASYNC110
                await asyncio.sleep(delay)
            self._next = loop.time() + self._interval

    def hold(self, seconds: float) -> None:
        """Make the chat wait ``seconds`` from now (the platform's Retry-After)."""
        self._next = max(self._next, asyncio.get_running_loop().time() + seconds)


@dataclass(slots=True)
class Shown:
    """One platform message of a reply, as the person sees it now."""

    id: str
    text: str
    buttons: int | None = None
    """The answer whose 👍/👎 the message carries, if any."""


class LiveReply(ABC):
    """One reply in one chat: the messages that show it, kept up with its text."""

    final_attempts = 8
    """How often the final text (and each picture) is tried on 429s before giving up."""

    def __init__(
        self,
        *,
        pacer: Pacer,
        where: str,
        max_wait: float = math.inf,
        shown: Sequence[str] = (),
    ) -> None:
        self._pacer = pacer
        self._where = where  # the chat, for the log
        self._max_wait = max_wait
        # Messages sent earlier show an unknown text: the first text edits them.
        self._shown: list[Shown] = [Shown(id, "") for id in shown]
        self._reported = tuple(shown)
        self._report: ShownCallback | None = None
        self._text = ""
        self._changed = asyncio.Event()
        self._closing = False
        self._follower: asyncio.Task[None] | None = None
        self._requesting = False  # a request to the platform is in flight

    # ---- the platform's part ------------------------------------------------------------

    @abstractmethod
    def _split(self, text: str) -> list[str]:
        """The messages that show ``text``, each within the platform's limit."""

    @abstractmethod
    async def _send(self, text: str, buttons: int | None) -> str:
        """Send a new message (through :meth:`_call`); return its id."""

    @abstractmethod
    async def _edit(self, shown: Shown, text: str, buttons: int | None) -> str:
        """Make a sent message show ``text``; return its id (a new one if it was resent)."""

    @abstractmethod
    async def _delete(self, shown: Shown) -> None:
        """Delete a message the final text no longer needs."""

    @abstractmethod
    async def _upload(self, name: str, data: bytes) -> None:
        """Send one picture after the text (through :meth:`_call`)."""

    @abstractmethod
    def _picture_failed(self, name: str, error: Exception) -> bool:
        """Log a picture that could not be sent; False to skip the pictures after it."""

    @abstractmethod
    async def _apologise(self, apology: str) -> None:
        """Send ``apology`` as a message of its own (through :meth:`_call`)."""

    @abstractmethod
    def _retry_after(self, error: Exception) -> float | None:
        """Seconds to wait when ``error`` is the platform's 429, else ``None``."""

    def _transient(self, error: Exception) -> bool:
        """True for errors worth trying the final text again for (e.g. the network)."""
        return False

    # ---- the renderer (core.streaming.ReplyRenderer) ------------------------------------

    def report_shown(self, callback: ShownCallback) -> None:
        """Call ``callback`` with the ids of the reply's messages whenever they change."""
        self._report = callback

    async def add(self, delta: str) -> None:
        """Take the next piece of text; it is shown as soon as the chat's pace allows."""
        self._text += delta
        self._changed.set()
        if self._follower is None:
            self._follower = asyncio.create_task(self._follow(), name="live-reply")

    async def finish(self, reply: Reply) -> str | None:
        """Show the final text (👍/👎 on an answer), then its pictures; return the id of
        the message with the answer's buttons.

        Waits out 429s; raises when the platform refuses the text or stays unreachable.
        """
        await self._stop_following()
        answer_id = reply.answer_id if reply.kind is ReplyKind.ANSWER else None
        # An answer shows as stored (feedback names it); other replies as streamed, which
        # keeps the part of an answer shown before a failure and its apology.
        text = reply.text if answer_id is not None or not self._text.strip() else self._text
        await self._retrying(lambda: self._show(text, answer_id, final=True), transient=True)
        shown = self._shown[-1].id if self._shown else None
        # After the text, so that a picture the platform refuses never costs the answer.
        await self._share(reply.attachments)
        return shown

    async def fail(self, apology: str) -> None:
        """Stop following the text and tell the person, as far as the platform lets us."""
        self._closing = True
        if self._follower is not None and not self._follower.done():
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
        try:
            await self._retrying(lambda: self._apologise(apology), transient=False)
        except Exception:
            log.exception("could not even apologise in %s", self._where)

    # ---- showing the text ---------------------------------------------------------------

    async def _call(self, request: Callable[[], Awaitable[T]]) -> T:
        """One request in this chat's turn; a 429 holds the chat and raises RateLimited."""
        await self._pacer.wait()
        self._requesting = True
        try:
            return await request()
        except Exception as exc:
            seconds = self._retry_after(exc)
            if seconds is None:
                raise
            log.info("asked to wait %.1f s in %s", seconds, self._where)
            self._pacer.hold(min(seconds, self._max_wait))
            raise RateLimited(seconds) from exc
        finally:
            self._requesting = False

    async def _retrying(self, request: Callable[[], Awaitable[T]], *, transient: bool) -> T:
        """``request``, tried again while rate-limited (and on transient errors if asked)."""
        for attempt in range(1, self.final_attempts + 1):
            try:
                return await request()
            except RateLimited:
                if attempt == self.final_attempts:
                    raise  # the pacer holds the chat until the next try
            except Exception as exc:
                if not transient or not self._transient(exc) or attempt == self.final_attempts:
                    raise
                log.warning("%s unreachable (%s); retrying in %s", self._where, exc, attempt)
                await asyncio.sleep(min(2.0**attempt, 30.0))
        raise AssertionError("unreachable")  # the loop returns or raises

    async def _share(self, pictures: Sequence[tuple[str, bytes]]) -> None:
        """Send ``(file name, bytes)`` pictures after the text; each once or not at all."""
        for name, data in pictures:
            try:
                # Only 429s are retried: a send that timed out may have arrived.
                await self._retrying(functools.partial(self._upload, name, data), transient=False)
            except Exception as exc:
                if not self._picture_failed(name, exc):
                    return

    async def _stop_following(self) -> None:
        """Stop the follower; a request in flight finishes, as its result must be known."""
        self._closing = True
        self._changed.set()
        follower = self._follower
        if follower is None:
            return
        if not self._requesting:
            follower.cancel()  # waiting for its turn: the final text supersedes its edit
        with contextlib.suppress(asyncio.CancelledError):
            await follower

    async def _follow(self) -> None:
        """Show the latest text whenever it changed and the pace allows."""
        while True:
            await self._changed.wait()
            if self._closing:
                return
            self._changed.clear()
            try:
                await self._show(self._text, None, final=False)
            except RateLimited:
                self._changed.set()  # the pacer holds; the text then shown is the latest
            except Exception:
                # An edit on the way is not worth the reply: finish() delivers the final text.
                log.warning("could not update a reply in %s", self._where, exc_info=True)

    async def _show(self, text: str, buttons: int | None, *, final: bool) -> None:
        """Make the messages show ``text``: edit those that differ, send the missing ones."""
        parts = self._split(text) if text.strip() else []
        if not parts:
            if not final:
                return
            parts = [EMPTY]
        for index, part in enumerate(parts):
            wanted = buttons if index == len(parts) - 1 else None
            if self._closing and not final:
                return  # finish() takes over from here with the final text
            if index == len(self._shown):
                self._shown.append(Shown(await self._send(part, wanted), part, wanted))
                await self._reported_now()
                continue
            shown = self._shown[index]
            if shown.text != part or shown.buttons != wanted:
                shown.id = await self._edit(shown, part, wanted)
                shown.text, shown.buttons = part, wanted
                await self._reported_now()
        if final:
            # The final text can be shorter than what was streamed (e.g. trimmed).
            while len(self._shown) > len(parts):
                await self._delete(self._shown.pop())
            await self._reported_now()

    async def _reported_now(self) -> None:
        """Tell the callback the messages' ids, if they changed since it was last told."""
        ids = tuple(shown.id for shown in self._shown)
        if self._report is None or ids == self._reported:
            return
        self._reported = ids
        self._requesting = True  # finish() waits for the record, as for a request
        try:
            await self._report(ids)
        finally:
            self._requesting = False
