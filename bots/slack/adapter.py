"""The Slack adapter: a slack-bolt ``AsyncApp`` that hands messages to the core.

Usage::

    adapter = build_slack(parley.inbox, settings)
    routes = adapter.routes()          # POST /slack/events, for a Starlette app
    await adapter.start()              # checks the token (auth.test)
    ...
    await adapter.stop()               # lets answers in progress finish

The adapter only translates and renders. A message event becomes a
:class:`core.types.Message` (:mod:`bots.slack.events`) and goes to
:meth:`core.inbox.Inbox.receive`, which claims, stores and answers it, streamed into the
thread by :class:`bots.slack.reply.SlackReply`. Every request is acknowledged within
Slack's 3 seconds and the work is done afterwards in tasks the inbox tracks; an event is
stored before it is acknowledged: a retry of an event already claimed is acknowledged
and dropped; a retry of one never claimed (e.g. lost in a restart) is answered; when the
database is down the answer is 503, so that Slack delivers the event again. Slash
commands are answered privately (:class:`bots.slack.command.CommandReply`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from slack_bolt.adapter.starlette.async_handler import to_async_bolt_request, to_starlette_response
from slack_bolt.async_app import AsyncApp, AsyncBoltContext, AsyncRespond
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from bots.slack.command import CommandReply
from bots.slack.deliver import SlackDeliverer
from bots.slack.events import (
    PLATFORM,
    LastThreads,
    ThreadMemory,
    command_message,
    translate_event,
)
from bots.slack.files import SlackFiles
from bots.slack.names import Names
from bots.slack.render import FEEDBACK_GOOD, to_mrkdwn
from bots.slack.reply import SlackReply
from core.conversation import APOLOGY
from core.errors import ConfigurationError
from core.inbox import Inbox, Incoming, Receipt, RendererFactory
from core.turn_commands import RETRY
from core.types import ConversationKey, Message, Rating, UserRef

__all__ = ["EVENTS_PATH", "MAX_BODY_BYTES", "SlackAdapter"]

log = logging.getLogger(__name__)

NAME_WAIT_S = 1.0
"""How long a message waits for its sender's name before it is stored without one."""

EVENTS_PATH = "/slack/events"
"""Where Slack sends events, slash commands and button presses (the Request URL)."""

MAX_BODY_BYTES = 4 * 1024 * 1024
"""Larger request bodies are refused unread; Slack's own stay far below."""

_FEEDBACK = re.compile(r"^parley_feedback_(good|bad)$")


class SlackAdapter:
    """Translates Slack events, slash commands and button presses for the inbox."""

    def __init__(
        self,
        inbox: Inbox,
        *,
        client: AsyncWebClient,
        signing_secret: str | None,
        command: str = "/parley",
        edit_interval: float = 1.0,
    ) -> None:
        self._inbox = inbox
        self._client = client
        self._signing_secret = signing_secret
        self._command = command
        self._edit_interval = edit_interval
        self._threads = ThreadMemory()
        self._last_threads = LastThreads()
        self._names = Names(client)
        self._files = SlackFiles(client)
        self.app = AsyncApp(
            name="parley",
            client=client,
            # Always a string: bolt would otherwise read SLACK_SIGNING_SECRET itself.
            signing_secret=signing_secret or "",
            # Listeners only store the event and start a task: they finish well within 3 s,
            # and running them before the response lets a failed store answer 503.
            process_before_response=True,
        )
        """The slack-bolt app (for Socket Mode: ``AsyncSocketModeHandler(adapter.app, …)``)."""
        self.app.use(self._admit_event)
        self.app.command(command)(self._on_command)
        self.app.action(_FEEDBACK)(self._on_feedback)

    # ---- the web process (bots.web's PlatformAdapter) -------------------------------------

    def deliverer(self) -> SlackDeliverer:
        """What delivers replies left by a process that stopped (:mod:`core.outbox`)."""
        return SlackDeliverer(self._client, edit_interval=self._edit_interval)

    def routes(self) -> list[BaseRoute]:
        """``POST /slack/events``: the Request URL for events, the command and interactivity."""
        return [Route(EVENTS_PATH, self.handle_http, methods=["POST"])]

    async def start(self) -> None:
        """Check the bot token with auth.test; a token Slack refuses stops the start-up.

        Then voice notes and images that a process which died had taken are answered
        (:mod:`core.intake`), now and whenever another process dies.
        """
        media = self._inbox.service.media
        if media is not None:
            every = media.lease_seconds / 2
            self._inbox.keep_resuming(PLATFORM, self._files.reopen, self._reply_in_thread, every)
        try:
            who = await self._client.auth_test()
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else None
            if error in ("invalid_auth", "not_authed", "account_inactive", "token_revoked"):
                raise ConfigurationError(
                    f"Slack refused PARLEY_SLACK_BOT_TOKEN ({error}): copy the Bot User OAuth "
                    "Token (xoxb-…) from the app's OAuth & Permissions page"
                ) from None
            log.warning("auth.test failed (%s); Slack will be tried again on the first event", exc)
            return
        except Exception as exc:  # e.g. no network yet: bolt retries on the first request
            log.warning("Slack is unreachable at start-up (%s); retrying on the first event", exc)
            return
        log.info("Slack: connected as @%s in %s", who.get("user"), who.get("team"))

    async def stop(self, grace: float = 10.0) -> None:
        """Let answers in progress finish (up to ``grace`` seconds), then cancel the rest."""
        await self._inbox.close(grace)

    async def drain(self) -> None:
        """Wait until every answer, command and rating in progress is done."""
        await self._inbox.drain()

    async def handle_http(self, request: Request) -> Response:
        """The Starlette endpoint: verify (bolt), dispatch, and answer Slack."""
        if not self._signing_secret:
            return PlainTextResponse(
                "Slack's HTTP events are off: set PARLEY_SLACK_SIGNING_SECRET", status_code=404
            )
        length = request.headers.get("content-length", "0")
        if length.isdigit() and int(length) > MAX_BODY_BYTES:
            return PlainTextResponse("request body too large", status_code=413)
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return PlainTextResponse("request body too large", status_code=413)
        try:
            bolt_request = to_async_bolt_request(request, body)
        except Exception as exc:  # the body is not what Slack sends: JSON, a form, UTF-8
            log.info("refused a malformed Slack request: %s", exc)
            return PlainTextResponse("malformed request body", status_code=400)
        if not _well_formed(bolt_request.body):
            log.info("refused a Slack request of an unknown shape")
            return PlainTextResponse("malformed request body", status_code=400)
        retry = request.headers.get("x-slack-retry-num")
        if retry is not None:
            log.info("Slack retry %s (%s)", retry, request.headers.get("x-slack-retry-reason"))
        return to_starlette_response(await self.app.async_dispatch(bolt_request))

    # ---- bolt middleware and listeners ------------------------------------------------------

    async def _admit_event(
        self, body: dict[str, Any], context: AsyncBoltContext, next_: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        """Translate a message event and hand it to the inbox; 503 when it cannot be stored."""
        if body.get("type") != "event_callback":
            await next_()
            return None
        message = translate_event(body, bot_user_id=context.bot_user_id, threads=self._threads)
        if message is None:
            return BoltResponse(status=200, body="")
        if _follow_up(message) and await self._joined(message.key):
            message = replace(message, reply_to_bot=True)
        event_id = body.get("event_id")
        incoming = Incoming(
            self._files.with_attachments(message, body["event"]),
            event_id=event_id if isinstance(event_id, str) and event_id else None,
            complete=self._named,
        )
        if await self._inbox.receive(incoming, self._reply_in_thread) is Receipt.RETRY:
            return BoltResponse(status=503, body="the database is unavailable; retry later")
        return BoltResponse(status=200, body="")

    async def _named(self, message: Message) -> Message:
        """The message with its sender's display name, when Slack tells it in time."""
        if message.user.display_name is not None:
            return message
        try:
            name = await asyncio.wait_for(self._names.of(message.user.id), NAME_WAIT_S)
        except TimeoutError:
            return message
        return replace(message, user=replace(message.user, display_name=name))

    async def _on_command(
        self, ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond
    ) -> None:
        """``/parley sub-command``: acknowledge now, reply privately when done."""
        await ack()
        message = command_message(command, self._last_threads)
        if message is not None:
            command_reply: RendererFactory = lambda message: CommandReply(  # noqa: E731
                self._client, respond, message
            )
            # /parley retry's new answer shows in the conversation, with its 👍/👎 buttons.
            retried = message.text.split()[0] == "/" + RETRY
            renderer = self._reply_in_thread if retried else command_reply
            await self._inbox.receive(Incoming(message, refusable=False), renderer)

    async def _on_feedback(
        self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]
    ) -> None:
        """A 👍/👎 press: acknowledge now, rate and confirm ephemerally."""
        await ack()
        self._inbox.later(self._rate(body, action))

    # ---- the work, after the acknowledgement ------------------------------------------------

    async def _joined(self, key: ConversationKey) -> bool:
        """Whether Parley answers in this thread: remembered here, or stored before a restart."""
        if key in self._threads:
            return True
        try:
            stored = await asyncio.to_thread(self._inbox.service.store.in_thread, key)
        except Exception:  # the inbox will find the database down too, and say so
            log.warning("could not look up the thread %s", key.encode(), exc_info=True)
            return False
        if stored:
            self._threads.add(key)
        return stored

    async def _join(self, key: ConversationKey) -> None:
        """Store that Parley answers in this thread, so that a restart remembers it."""
        try:
            await asyncio.to_thread(self._inbox.service.store.join_thread, key)
        except Exception:
            log.exception("could not store the thread %s", key.encode())

    def _reply_in_thread(self, message: Message) -> SlackReply:
        """The renderer of a message's reply; notes the thread Parley answers in."""
        if message.is_group and message.thread is not None:
            if message.key not in self._threads:
                self._inbox.later(self._join(message.key))
            self._threads.add(message.key)
        self._last_threads.note(message)
        return SlackReply(
            self._client,
            channel=message.chat,
            thread_ts=message.thread,
            edit_interval=self._edit_interval,
        )

    async def _rate(self, body: dict[str, Any], action: dict[str, Any]) -> None:
        """Record a button press and confirm it to the presser with an ephemeral message."""
        user = body.get("user") or {}
        channel = (body.get("channel") or {}).get("id")
        shown = body.get("message") or {}
        user_id = user.get("id")
        if not isinstance(user_id, str) or not isinstance(channel, str):
            log.warning("a Slack button press without a user or channel was ignored")
            return
        rating = Rating.GOOD if action.get("action_id") == FEEDBACK_GOOD else Rating.BAD
        person = UserRef(PLATFORM, user_id, user.get("username") or user.get("name"))
        try:
            answer_id = int(action.get("value", ""))
        except ValueError:
            log.warning("a Slack feedback button carried no answer id: %r", action.get("value"))
            return
        try:
            text = (await self._inbox.rate(answer_id, person, rating)).text
        except Exception:
            log.exception("recording feedback on answer %s failed", answer_id)
            text = APOLOGY
        try:
            await self._client.chat_postEphemeral(
                channel=channel,
                user=user_id,
                text=to_mrkdwn(text),
                thread_ts=shown.get("thread_ts"),
            )
        except Exception:
            log.exception("could not confirm feedback to %s in %s", user_id, channel)


def _follow_up(message: Message) -> bool:
    """A reply in a channel thread that does not address Parley by itself."""
    return (
        message.is_group
        and message.thread is not None
        and message.thread != message.message_id
        and not (message.mentions_bot or message.reply_to_bot)
    )


def _well_formed(body: object) -> bool:
    """False for bodies that would trip bolt's own middleware (which expects Slack's shapes)."""
    if not isinstance(body, dict):
        return False
    event = body.get("event")
    return event is None or isinstance(event, dict)
