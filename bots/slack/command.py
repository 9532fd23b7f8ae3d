"""A ``/parley`` command's reply: shown only to the person who ran it, once complete.

:class:`CommandReply` is the :class:`core.streaming.ReplyRenderer` of slash commands: the
text is answered ephemerally through bolt's ``respond`` (nothing is streamed: ephemeral
messages cannot be edited). Slack has no files only one person sees: a reply's pictures
are uploaded in a DM, which only the person and Parley share, and withheld in a channel.
"""

from __future__ import annotations

import logging

from slack_bolt.async_app import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.render import split_mrkdwn, to_mrkdwn
from bots.slack.reply import SlackReply
from core.types import Message, Reply

__all__ = ["WITHHELD", "CommandReply"]

log = logging.getLogger(__name__)

WITHHELD = (
    "(This comes with pictures, which Slack would show to the whole channel: mention me "
    "with {command} in the thread to see them there.)"
)
"""Added to a slash command's private reply in a channel when its pictures are withheld."""


class CommandReply:
    """The private reply to one slash command."""

    def __init__(self, client: AsyncWebClient, respond: AsyncRespond, message: Message) -> None:
        self._client = client
        self._respond = respond
        self._message = message

    async def add(self, delta: str) -> None:
        """Nothing shows before the reply is complete."""

    async def finish(self, reply: Reply) -> str | None:
        """Answer the person privately, then share the pictures where only they see them."""
        message = self._message
        text = reply.text  # the core already spells commands as /parley cmd on Slack
        pictures = reply.attachments
        if pictures and message.is_group:
            log.info("pictures of %s withheld: a channel would see them", _name(message.text))
            text += "\n\n" + WITHHELD.format(command=message.text)
            pictures = ()
        try:
            for part in split_mrkdwn(to_mrkdwn(text)):
                await self._respond(text=part, response_type="ephemeral", replace_original=False)
        except Exception:
            log.exception("could not answer Slack command %s", _name(message.text))
            return None
        if pictures:
            await SlackReply(self._client, channel=message.chat, thread_ts=None).share(pictures)
        return None

    async def fail(self, apology: str) -> None:
        """Tell the person the command failed (best effort)."""
        try:
            await self._respond(text=apology, response_type="ephemeral", replace_original=False)
        except Exception:
            log.exception("could not answer Slack command %s", _name(self._message.text))


def _name(text: str) -> str:
    """The command's name alone, for the log: what people type after it stays out."""
    return text.strip().split(maxsplit=1)[0][:32] if text.strip() else "(empty)"
