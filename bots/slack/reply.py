"""A reply shown in Slack while it is written: :class:`SlackReply`.

The shared part (pacing, edits, splitting, the final text) is :class:`bots.live_reply.LiveReply`;
this module makes Slack's Web API calls::

    reply = SlackReply(client, channel="D123", thread_ts=None)
    async for delta in stream:
        await reply.add(delta)
    ts = await reply.finish(stream.result)   # the message that carries 👍/👎, then pictures

The first text is posted at once (``chat.postMessage``); later text is shown with
``chat.update`` at most once per ``edit_interval`` seconds and only when it changed. Text
that outgrows one message continues in the next. A 429 while streaming only delays the
next edit; the final text waits out Retry-After (at most ``max_wait`` seconds a time) and
is always delivered, with the buttons when the reply is an answer.

Pictures that come with a reply (the ``/explain`` charts) are uploaded after its text into
the same channel and thread with ``files_upload_v2`` (the app needs the ``files:write``
scope). An upload Slack refuses is logged, with what to fix when the scope is missing; the
text stands.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots.live_reply import LiveReply, Pacer, Shown
from bots.slack.render import MAX_CHARS, answer_blocks, split_mrkdwn, to_mrkdwn

__all__ = ["FILES_SCOPE", "SlackReply", "retry_after"]

log = logging.getLogger(__name__)

FILES_SCOPE = "files:write"
"""The bot scope that uploading pictures needs (see docs/slack-manifest.yaml)."""


def retry_after(error: Exception) -> float | None:
    """Seconds Slack asks to wait when ``error`` is a 429, else ``None``."""
    if not isinstance(error, SlackApiError):
        return None
    response = error.response
    if getattr(response, "status_code", None) != 429:
        return None
    headers: Any = getattr(response, "headers", None) or {}
    value = next((v for k, v in headers.items() if str(k).lower() == "retry-after"), None)
    try:
        return max(0.0, float(value)) if value is not None else 1.0
    except (TypeError, ValueError):
        return 1.0


class SlackReply(LiveReply):
    """One reply in one Slack channel or thread."""

    final_attempts = 6

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        channel: str,
        thread_ts: str | None,
        edit_interval: float = 1.0,
        limit: int = MAX_CHARS,
        max_wait: float = 30.0,
        shown: Sequence[str] = (),
    ) -> None:
        """``shown``: messages of this reply sent earlier, to edit (see :class:`LiveReply`)."""
        super().__init__(pacer=Pacer(edit_interval), where=channel, max_wait=max_wait, shown=shown)
        self._client = client
        self._channel = channel
        self._thread_ts = thread_ts
        self._limit = limit

    def _split(self, text: str) -> list[str]:
        return split_mrkdwn(to_mrkdwn(text), self._limit)

    def _retry_after(self, error: Exception) -> float | None:
        return retry_after(error)

    async def _send(self, text: str, buttons: int | None) -> str:
        response = await self._call(
            lambda: self._client.chat_postMessage(
                channel=self._channel,
                thread_ts=self._thread_ts,
                text=text,
                blocks=answer_blocks(text, buttons),
                unfurl_links=False,
                unfurl_media=False,
            )
        )
        return str(response["ts"])

    async def _edit(self, shown: Shown, text: str, buttons: int | None) -> str:
        await self._call(
            lambda: self._client.chat_update(
                channel=self._channel, ts=shown.id, text=text, blocks=answer_blocks(text, buttons)
            )
        )
        return shown.id

    async def _delete(self, shown: Shown) -> None:
        await self._call(lambda: self._client.chat_delete(channel=self._channel, ts=shown.id))

    async def _upload(self, name: str, data: bytes) -> None:
        # A 429 at any step means nothing was shared yet: uploading again is safe
        # (a file uploaded but never completed stays private to the app).
        await self._call(
            lambda: self._client.files_upload_v2(
                channel=self._channel,
                thread_ts=self._thread_ts,
                file=data,
                filename=name,
                title=name,
            )
        )

    def _picture_failed(self, name: str, error: Exception) -> bool:
        cause = error.__cause__ if isinstance(error.__cause__, SlackApiError) else error
        if not isinstance(cause, SlackApiError):
            log.exception("uploading %s to Slack in %s failed", name, self._channel)
            return True
        reason = cause.response.get("error")
        if reason == "missing_scope":
            log.error(
                "Slack refused to upload %s in %s (missing_scope): the app lacks the %s scope. "
                "Add it under OAuth & Permissions → Bot Token Scopes (it is in "
                "docs/slack-manifest.yaml) and reinstall the app; until then answers come "
                "without their pictures.",
                name,
                self._channel,
                cause.response.get("needed") or FILES_SCOPE,
            )
            return False  # the next picture would be refused the same way
        log.warning("Slack refused to upload %s in %s: %s", name, self._channel, reason)
        return True

    async def _apologise(self, apology: str) -> None:
        await self._call(
            lambda: self._client.chat_postMessage(
                channel=self._channel, thread_ts=self._thread_ts, text=apology
            )
        )

    async def share(self, pictures: Sequence[tuple[str, bytes]]) -> None:
        """Upload pictures without a text before them (a slash command's, in a DM)."""
        await self._share(pictures)
