"""Replies delivered after a restart on Slack: the outbox's :class:`core.outbox.Deliverer`.

A reply whose process died before it reached the person is shown by a live process in
the channel and thread of its conversation, as the live reply would have been; the
messages the dead process had posted are updated::

    outbox.add(adapter.deliverer())   # a SlackDeliverer on the adapter's Web API client
"""

from __future__ import annotations

from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.reply import SlackReply
from core.outbox import Target

__all__ = ["SlackDeliverer"]


class SlackDeliverer:
    """Makes the :class:`SlackReply` that delivers a stored reply."""

    platform = "slack"

    def __init__(self, client: AsyncWebClient, *, edit_interval: float) -> None:
        self._client = client
        self._edit_interval = edit_interval

    def renderer(self, target: Target) -> SlackReply:
        return SlackReply(
            self._client,
            channel=target.key.chat,
            thread_ts=target.key.thread,
            edit_interval=self._edit_interval,
            shown=target.shown,
        )
