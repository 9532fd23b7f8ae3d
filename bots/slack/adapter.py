"""The Slack adapter: a slack-bolt ``AsyncApp`` that hands messages to the core.

Usage::

    adapter = build_slack(service, settings)
    routes = adapter.routes()          # POST /slack/events, for a Starlette app
    await adapter.start()              # checks the token (auth.test)
    ...
    await adapter.stop()               # lets answers in progress finish

Every request is acknowledged within Slack's 3 seconds and the work is done afterwards in
tasks the adapter tracks. Before an event is acknowledged it is claimed in the store
(``service.first_delivery``): a retry of an event already claimed is acknowledged and
dropped; a retry of one never claimed (e.g. lost in a restart) is answered; when the
database is down the answer is 503, so that Slack delivers the event again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import aclosing
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

from bots.slack.delivery import ReplyWriter
from bots.slack.events import (
    PLATFORM,
    LastThreads,
    ThreadMemory,
    command_message,
    translate_event,
)
from bots.slack.files import SlackFiles
from bots.slack.render import FEEDBACK_GOOD, split_mrkdwn, to_mrkdwn
from core.conversation import APOLOGY, Accepted, ConversationService
from core.errors import ConfigurationError, StoreError
from core.locks import KeyedLocks
from core.types import Message, Rating, UserRef

__all__ = ["EVENTS_PATH", "MAX_BODY_BYTES", "SlackAdapter"]

log = logging.getLogger(__name__)

NAME_WAIT_S = 1.0
"""How long a message waits for its sender's name before it is stored without one."""

EVENTS_PATH = "/slack/events"
"""Where Slack sends events, slash commands and button presses (the Request URL)."""

MAX_BODY_BYTES = 4 * 1024 * 1024
"""Larger request bodies are refused unread; Slack's own stay far below."""

WITHHELD = (
    "(This comes with pictures, which Slack would show to the whole channel: mention me "
    "with {command} in the thread to see them there.)"
)
"""Added to a slash command's private reply in a channel when its pictures are withheld."""

_MESSAGE = "parley_message"
_FEEDBACK = re.compile(r"^parley_feedback_(good|bad)$")


class _Names:
    """People's display names from users.info, looked up once per person (bounded)."""

    def __init__(self, client: AsyncWebClient, size: int = 10_000) -> None:
        self._client = client
        self._size = size
        self._names: dict[str, str | None] = {}

    async def of(self, user_id: str) -> str | None:
        """The name Slack shows for a person, or ``None`` when it cannot be had."""
        if user_id in self._names:
            return self._names[user_id]
        name: str | None = None
        try:
            found = (await self._client.users_info(user=user_id)).get("user") or {}
            profile = found.get("profile") or {}
            name = profile.get("display_name") or found.get("real_name") or found.get("name")
        except SlackApiError as exc:
            # e.g. missing_scope (no users:read): the core then says "user U…".
            log.info("users.info for %s failed: %s", user_id, exc.response.get("error"))
        except Exception:
            log.warning("users.info for %s failed", user_id, exc_info=True)
            return None  # a network failure is not remembered
        if len(self._names) >= self._size:
            self._names.clear()
        self._names[user_id] = name if isinstance(name, str) and name else None
        return self._names[user_id]


class SlackAdapter:
    """Translates Slack events, slash commands and button presses for the conversation service."""

    def __init__(
        self,
        service: ConversationService,
        *,
        client: AsyncWebClient,
        signing_secret: str | None,
        command: str = "/parley",
        edit_interval: float = 1.0,
    ) -> None:
        self._service = service
        self._client = client
        self._signing_secret = signing_secret
        self._command = command
        self._edit_interval = edit_interval
        self._threads = ThreadMemory()
        self._last_threads = LastThreads()
        self._locks = KeyedLocks()
        self._names = _Names(client)
        self._files = SlackFiles(client)
        self._tasks: set[asyncio.Task[None]] = set()
        self.app = AsyncApp(
            name="parley",
            client=client,
            # Always a string: bolt would otherwise read SLACK_SIGNING_SECRET itself.
            signing_secret=signing_secret or "",
            # Listeners only claim the event and start a task: they finish well within 3 s,
            # and running them before the response lets a failed claim answer 503.
            process_before_response=True,
        )
        """The slack-bolt app (for Socket Mode: ``AsyncSocketModeHandler(adapter.app, …)``)."""
        self.app.use(self._admit_event)
        self.app.event("message")(self._on_event)
        self.app.event("app_mention")(self._on_event)
        self.app.command(command)(self._on_command)
        self.app.action(_FEEDBACK)(self._on_feedback)

    # ---- the web process (bots.web's PlatformAdapter) -------------------------------------

    def routes(self) -> list[BaseRoute]:
        """``POST /slack/events``: the Request URL for events, the command and interactivity."""
        return [Route(EVENTS_PATH, self.handle_http, methods=["POST"])]

    async def start(self) -> None:
        """Check the bot token with auth.test; a token Slack refuses stops the start-up."""
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
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drain(), grace)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def drain(self) -> None:
        """Wait until every answer, command and rating in progress is done."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

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
        """Translate an event, ask the core, and claim it; acknowledge what is not for Parley."""
        if body.get("type") != "event_callback":
            await next_()
            return None
        message = translate_event(body, bot_user_id=context.bot_user_id, threads=self._threads)
        if message is None or not self._service.should_answer(message):
            return BoltResponse(status=200, body="")
        message = self._files.with_attachments(message, body["event"])
        event_id = body.get("event_id")
        if isinstance(event_id, str) and event_id:
            try:
                first = await self._service.first_delivery(PLATFORM, event_id)
            except StoreError:
                log.exception("could not claim Slack event %s; asking Slack to retry", event_id)
                return BoltResponse(status=503, body="the database is unavailable; retry later")
            if not first:
                log.info("Slack event %s was already handled; acknowledged again", event_id)
                return BoltResponse(status=200, body="")
        # The message is stored before Slack hears 200: nothing acknowledged is lost.
        try:
            context[_MESSAGE] = await self._service.accept(await self._named(message))
        except StoreError:
            log.exception("could not store Slack event %s; asking Slack to retry", event_id)
            if isinstance(event_id, str) and event_id:
                await self._service.release_delivery(PLATFORM, event_id)
            return BoltResponse(status=503, body="the database is unavailable; retry later")
        await next_()
        return None

    async def _on_event(self, context: AsyncBoltContext) -> None:
        """An admitted message or mention: answer it in a task."""
        accepted = context.get(_MESSAGE)
        if isinstance(accepted, Accepted):
            self._spawn(self._answer(accepted))

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
        """``/parley sub-command``: acknowledge now, reply ephemerally when done."""
        await ack()
        message = command_message(command, self._last_threads)
        if message is not None:
            self._spawn(self._run_command(message, respond))

    async def _on_feedback(
        self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]
    ) -> None:
        """A 👍/👎 press: acknowledge now, rate and confirm ephemerally."""
        await ack()
        self._spawn(self._rate(body, action))

    # ---- the work, after the acknowledgement ------------------------------------------------

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, accepted: Accepted) -> None:
        """Stream the core's reply into the thread and record where the answer is shown."""
        message = accepted.message
        if message.is_group and message.thread is not None:
            self._threads.add(message.key)
        self._last_threads.note(message)
        writer = ReplyWriter(
            self._client,
            channel=message.chat,
            thread_ts=message.thread,
            edit_interval=self._edit_interval,
        )
        async with self._locks.hold(message.key):
            try:
                async with aclosing(self._service.reply(accepted)) as stream:
                    async for delta in stream:
                        await writer.add(delta)
                    reply = stream.result
                ts = await writer.finish(reply)
            except Exception:
                log.exception(
                    "answering Slack message %s in %s failed",
                    message.message_id,
                    message.key.encode(),
                )
                await writer.apologise(APOLOGY)
                return
            # After the text and outside the apology: a refused upload costs only the picture.
            await writer.share(reply.attachments)
        if reply.answer_id is not None and ts is not None:
            try:
                await self._service.delivered(reply.answer_id, ts)
            except Exception:
                log.exception(
                    "could not record Slack message %s for answer %s", ts, reply.answer_id
                )

    async def _run_command(self, message: Message, respond: AsyncRespond) -> None:
        """Run a slash command through the core and answer only the person who ran it.

        Slack has no files only one person sees: a reply's pictures are uploaded in a DM,
        which only the person and Parley share, and withheld in a channel.
        """
        pictures: tuple[tuple[str, bytes], ...] = ()
        try:
            async with self._locks.hold(message.key):
                reply = await self._service.handle(message).collect()
            text = reply.text  # the core already spells commands as /parley cmd on Slack
            pictures = reply.attachments
        except Exception:
            log.exception("Slack command %s failed", _command_name(message.text))
            text = APOLOGY
        if pictures and message.is_group:
            log.info(
                "pictures of %s withheld: a channel would see them", _command_name(message.text)
            )
            text += "\n\n" + WITHHELD.format(command=message.text)
            pictures = ()
        try:
            for part in split_mrkdwn(to_mrkdwn(text)):
                await respond(text=part, response_type="ephemeral", replace_original=False)
        except Exception:
            log.exception("could not answer Slack command %s", _command_name(message.text))
            return
        if pictures:
            writer = ReplyWriter(self._client, channel=message.chat, thread_ts=message.thread)
            await writer.share(pictures)

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
            text = (await self._service.rate(answer_id, person, rating)).text
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


def _well_formed(body: object) -> bool:
    """False for bodies that would trip bolt's own middleware (which expects Slack's shapes)."""
    if not isinstance(body, dict):
        return False
    event = body.get("event")
    return event is None or isinstance(event, dict)


def _command_name(text: str) -> str:
    """The command's name alone, for the log: what people type after it stays out."""
    return text.strip().split(maxsplit=1)[0][:32] if text.strip() else "(empty)"
