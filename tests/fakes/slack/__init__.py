"""A local fake of Slack for tests: its Web API, its response URLs, and signed deliveries.

Usage::

    async with FakeSlack() as slack:                       # http://127.0.0.1:<port>/api/
        client = AsyncWebClient(token=FakeSlack.TOKEN, base_url=slack.api_url)
        ...
        slack.rate_limit("chat.update", times=1, retry_after=1)
        assert slack.visible("D1", ts) == "the text the person sees"
        slack.scopes.discard("files:write")                # uploads now fail: missing_scope
        assert slack.files_in("C1", thread_ts)[0].data == png_bytes

    sender = SlackSender(asgi_app, signing_secret="secret")
    response = await sender.event(dm("hello"), retry_num=1)

:class:`FakeSlack` is a real aiohttp server that the real ``slack_sdk`` talks to: it
records every call, keeps each message's current text and blocks by (channel, ts),
checks Slack's limits (3,000 characters in a section, 40,000 in a text), and can answer
the next N calls of a method with 429 and Retry-After. It takes file uploads as Slack's
``files_upload_v2`` makes them: ``files.getUploadURLExternal`` hands out an upload URL on
this server, the bytes are POSTed there, and ``files.completeUploadExternal`` shares the
files into a channel or thread (:attr:`FakeSlack.files`); both methods need the
``files:write`` scope (:attr:`FakeSlack.scopes`). Files people share are held with
:meth:`FakeSlack.add_file` (which returns the file object for an event's ``files``):
``files.info`` (scope ``files:read``) describes them and their ``url_private_download`` on
this server gives the bytes to the bot token, and Slack's login page (HTML) to anyone else.
:class:`SlackSender` signs
events, slash commands and button presses as Slack does (HMAC-SHA256 over
``v0:timestamp:body``) and posts them to an ASGI app.
"""

from __future__ import annotations

from tests.fakes.slack.records import (
    BOT_ID,
    BOT_SCOPES,
    BOT_USER,
    TEAM,
    Call,
    SentMessage,
    SharedFile,
    next_ts,
)
from tests.fakes.slack.sender import SlackSender, app_mention, dm, event_callback, sign
from tests.fakes.slack.server import FakeSlack

__all__ = [
    "BOT_ID",
    "BOT_SCOPES",
    "BOT_USER",
    "TEAM",
    "Call",
    "FakeSlack",
    "SentMessage",
    "SharedFile",
    "SlackSender",
    "app_mention",
    "dm",
    "event_callback",
    "next_ts",
    "sign",
]
