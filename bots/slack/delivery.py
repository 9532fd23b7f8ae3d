"""Showing one streamed reply in Slack: post, edit as it grows, split, buttons at the end.

Usage::

    writer = ReplyWriter(client, channel="D123", thread_ts=None)
    stream = service.handle(message)
    async for delta in stream:
        await writer.add(delta)
    ts = await writer.finish(stream.result)   # the message that carries 👍/👎
    await writer.share(stream.result.attachments)   # pictures, after the text

The first text is posted at once (``chat.postMessage``); later text is shown with
``chat.update`` at most once per ``edit_interval`` seconds and only when it changed. Text
that outgrows one message continues in the next. A 429 on an edit while streaming only
delays the next edit (the model is never held up by Slack); the final text waits out
Retry-After and is always delivered, with the buttons when the reply is an answer.

Pictures that come with a reply (the ``/explain`` charts) are uploaded after its text into
the same channel and thread with ``files_upload_v2`` (the app needs the ``files:write``
scope). An upload Slack refuses is logged, with what to fix when the scope is missing; the
text stands.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bots.slack.render import MAX_CHARS, answer_blocks, split_mrkdwn, to_mrkdwn
from core.types import Reply, ReplyKind

__all__ = ["ReplyWriter", "retry_after"]

log = logging.getLogger(__name__)

FINAL_ATTEMPTS = 6
FILES_SCOPE = "files:write"
"""The bot scope that uploading pictures needs (see docs/slack-manifest.yaml)."""


def retry_after(error: SlackApiError) -> float | None:
    """Seconds Slack asks to wait when ``error`` is a 429, else ``None``."""
    response = error.response
    if getattr(response, "status_code", None) != 429:
        return None
    headers: Any = getattr(response, "headers", None) or {}
    value = next((v for k, v in headers.items() if str(k).lower() == "retry-after"), None)
    try:
        return max(0.0, float(value)) if value is not None else 1.0
    except (TypeError, ValueError):
        return 1.0


class _RateLimited(Exception):
    """An edit while streaming hit a 429; the next edit waits."""


@dataclass(slots=True)
class _Shown:
    """One Slack message of the reply, as the person currently sees it."""

    ts: str
    text: str
    answer_id: int | None = None


class ReplyWriter:
    """Shows one reply in one channel (and thread) as it streams."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        channel: str,
        thread_ts: str | None,
        edit_interval: float = 1.0,
        limit: int = MAX_CHARS,
        max_wait: float = 30.0,
    ) -> None:
        self._client = client
        self._channel = channel
        self._thread_ts = thread_ts
        self._interval = edit_interval
        self._limit = limit
        self._max_wait = max_wait
        self._markdown = ""
        self._shown: list[_Shown] = []
        self._next_edit = 0.0

    @property
    def posted(self) -> list[str]:
        """The ``ts`` of every message of this reply, in order."""
        return [shown.ts for shown in self._shown]

    async def add(self, delta: str) -> None:
        """Take the next piece of text; show it now if Slack's pace allows."""
        self._markdown += delta
        if time.monotonic() < self._next_edit or not self._markdown.strip():
            return
        try:
            await self._show(self._markdown, answer_id=None, final=False)
        except _RateLimited:
            pass
        except Exception:
            # Edits while streaming are best effort: the final text is sent in full anyway.
            log.warning("a streaming edit in %s failed", self._channel, exc_info=True)
            self._next_edit = time.monotonic() + self._interval

    async def finish(self, reply: Reply) -> str | None:
        """Show the final text (with 👍/👎 on an answer); return the last message's ``ts``."""
        # An answer shows the stored text; an error after partial text keeps that text.
        markdown = reply.text if reply.kind is ReplyKind.ANSWER else self._markdown or reply.text
        wait = self._next_edit - time.monotonic()
        if wait > 0 and self._shown:
            await asyncio.sleep(min(wait, self._max_wait))
        await self._show(markdown, answer_id=reply.answer_id, final=True)
        return self._shown[-1].ts if self._shown else None

    async def share(self, pictures: Sequence[tuple[str, bytes]]) -> int:
        """Upload ``(file name, bytes)`` pictures into the thread; return how many arrived.

        Call it after :meth:`finish`. Best effort: a 429 is waited out; any other failure is
        logged and the picture skipped (all of them when the app lacks ``files:write``).
        """
        shared = 0
        for name, data in pictures:
            try:
                # A 429 at any step means nothing was shared yet: uploading again is safe
                # (a file uploaded but never completed stays private to the app).
                await self._call(
                    self._client.files_upload_v2,
                    final=True,
                    channel=self._channel,
                    thread_ts=self._thread_ts,
                    file=data,
                    filename=name,
                    title=name,
                )
            except SlackApiError as exc:
                error = exc.response.get("error")
                if error == "missing_scope":
                    log.error(
                        "Slack refused to upload %s in %s (missing_scope): the app lacks the "
                        "%s scope. Add it under OAuth & Permissions → Bot Token Scopes (it is "
                        "in docs/slack-manifest.yaml) and reinstall the app; until then "
                        "answers come without their pictures.",
                        name,
                        self._channel,
                        exc.response.get("needed") or FILES_SCOPE,
                    )
                    break
                log.warning("Slack refused to upload %s in %s: %s", name, self._channel, error)
            except Exception:
                log.exception("uploading %s to Slack in %s failed", name, self._channel)
            else:
                shared += 1
        return shared

    async def apologise(self, text: str) -> None:
        """Post a short apology in the thread; best effort, for when delivery itself failed."""
        try:
            await self._call(
                self._client.chat_postMessage,
                final=True,
                channel=self._channel,
                thread_ts=self._thread_ts,
                text=text,
            )
        except Exception:
            log.exception("could not post an apology in %s", self._channel)

    async def _show(self, markdown: str, *, answer_id: int | None, final: bool) -> None:
        """Bring Slack in line with ``markdown``: edit what changed, post what is new."""
        parts = split_mrkdwn(to_mrkdwn(markdown), self._limit)
        for i, text in enumerate(parts):
            buttons = answer_id if i == len(parts) - 1 else None
            blocks = answer_blocks(text, buttons)
            if i < len(self._shown):
                shown = self._shown[i]
                if shown.text == text and shown.answer_id == buttons:
                    continue
                await self._call(
                    self._client.chat_update,
                    final=final,
                    channel=self._channel,
                    ts=shown.ts,
                    text=text,
                    blocks=blocks,
                )
                shown.text, shown.answer_id = text, buttons
            else:
                response = await self._call(
                    self._client.chat_postMessage,
                    final=final,
                    channel=self._channel,
                    thread_ts=self._thread_ts,
                    text=text,
                    blocks=blocks,
                    unfurl_links=False,
                    unfurl_media=False,
                )
                self._shown.append(_Shown(str(response["ts"]), text, buttons))
        # Text that split differently while it grew can leave a message too many.
        while len(self._shown) > len(parts):
            surplus = self._shown.pop()
            await self._call(
                self._client.chat_delete, final=final, channel=self._channel, ts=surplus.ts
            )
        self._next_edit = time.monotonic() + self._interval

    async def _call(
        self, method: Callable[..., Awaitable[AsyncSlackResponse]], *, final: bool, **kwargs: Any
    ) -> AsyncSlackResponse:
        """Call a Web API method, honouring 429 + Retry-After (waiting only when ``final``)."""
        for attempt in range(1, FINAL_ATTEMPTS + 1):
            try:
                return await method(**kwargs)
            except SlackApiError as exc:
                wait = retry_after(exc)
                if wait is None:
                    raise
                if not final:
                    self._next_edit = time.monotonic() + wait
                    raise _RateLimited from exc
                if attempt == FINAL_ATTEMPTS:
                    raise
                log.info("Slack rate-limited %s; retrying in %.1f s", method.__name__, wait)
                await asyncio.sleep(min(wait, self._max_wait))
        raise AssertionError("unreachable")
