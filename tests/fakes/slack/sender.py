"""What Slack sends an app, signed as Slack signs it: events, commands, button presses."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from typing import Any
from urllib.parse import urlencode

import httpx

from tests.fakes.slack.records import (
    BOT_USER,
    TEAM,
    SentMessage,
    next_ts,
)

# ---- what Slack sends -------------------------------------------------------------------


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """Slack's ``X-Slack-Signature`` for a body sent at ``timestamp``."""
    base = f"v0:{timestamp}:".encode() + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def dm(text: str, *, user: str = "U1", channel: str = "D1", **extra: Any) -> dict[str, Any]:
    """A ``message.im`` event."""
    return {
        "type": "message",
        "channel_type": "im",
        "channel": channel,
        "user": user,
        "text": text,
        "ts": next_ts(),
        **extra,
    }


def app_mention(
    text: str, *, user: str = "U1", channel: str = "C1", **extra: Any
) -> dict[str, Any]:
    """An ``app_mention`` event; ``text`` may hold ``<@BOT_USER>``."""
    return {
        "type": "app_mention",
        "channel": channel,
        "user": user,
        "text": text,
        "ts": next_ts(),
        **extra,
    }


def event_callback(event: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    """An Events API ``event_callback`` envelope around one event."""
    return {
        "token": "legacy",
        "team_id": TEAM,
        "api_app_id": "A0PARLEY",
        "event": event,
        "type": "event_callback",
        "event_id": event_id or SlackSender.new_event_id(),
        "event_time": int(time.time()),
        "authorizations": [
            {"team_id": TEAM, "user_id": BOT_USER, "is_bot": True, "enterprise_id": None}
        ],
    }


class SlackSender:
    """Posts signed Slack requests to an ASGI app, as Slack's servers would."""

    _ids = itertools.count(1)

    def __init__(self, app: Any, *, signing_secret: str, path: str = "/slack/events") -> None:
        self._app = app
        self._secret = signing_secret
        self._path = path

    async def post(
        self,
        body: bytes,
        *,
        content_type: str,
        retry_num: int | None = None,
        timestamp: int | None = None,
        signature: str | None = None,
    ) -> httpx.Response:
        """Sign ``body`` (unless ``signature`` is given) and post it."""
        timestamp = int(time.time()) if timestamp is None else timestamp
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": str(timestamp),
            "X-Slack-Signature": signature or sign(self._secret, body, timestamp),
        }
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        transport = httpx.ASGITransport(app=self._app)
        async with httpx.AsyncClient(transport=transport, base_url="http://parley") as client:
            return await client.post(self._path, content=body, headers=headers)

    @classmethod
    def new_event_id(cls) -> str:
        """A fresh event id."""
        return f"Ev{next(cls._ids):08d}"

    def event_body(self, event: dict[str, Any], *, event_id: str | None = None) -> bytes:
        """The JSON body of an Events API ``event_callback``."""
        return json.dumps(event_callback(event, event_id=event_id)).encode()

    async def event(
        self,
        event: dict[str, Any],
        *,
        event_id: str | None = None,
        retry_num: int | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Deliver one event."""
        body = self.event_body(event, event_id=event_id)
        return await self.post(body, content_type="application/json", retry_num=retry_num, **kwargs)

    async def command(
        self,
        text: str,
        *,
        response_url: str,
        user: str = "U1",
        channel: str = "D1",
        command: str = "/parley",
    ) -> httpx.Response:
        """Run a slash command."""
        form = {
            "token": "legacy",
            "team_id": TEAM,
            "team_domain": "test",
            "channel_id": channel,
            "channel_name": "directmessage" if channel.startswith("D") else "general",
            "user_id": user,
            "user_name": f"name-{user}",
            "command": command,
            "text": text,
            "api_app_id": "A0PARLEY",
            "response_url": response_url,
            "trigger_id": "1.2.3",
        }
        return await self.post(
            urlencode(form).encode(), content_type="application/x-www-form-urlencoded"
        )

    async def press(
        self,
        message: SentMessage,
        action_id: str,
        *,
        user: str = "U1",
        response_url: str = "http://127.0.0.1:9/unused",
    ) -> httpx.Response:
        """Press a button under one of the bot's messages (a ``block_actions`` payload)."""
        button = next(b for b in message.buttons if b["action_id"] == action_id)
        payload = {
            "type": "block_actions",
            "team": {"id": TEAM, "domain": "test"},
            "user": {"id": user, "username": f"name-{user}", "team_id": TEAM},
            "api_app_id": "A0PARLEY",
            "token": "legacy",
            "container": {"type": "message", "message_ts": message.ts},
            "trigger_id": "1.2.3",
            "channel": {"id": message.channel, "name": "chat"},
            "message": {
                "type": "message",
                "ts": message.ts,
                "text": message.text,
                **({"thread_ts": message.thread_ts} if message.thread_ts else {}),
            },
            "response_url": response_url,
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": "parley_feedback",
                    "value": button["value"],
                    "action_ts": str(time.time()),
                }
            ],
        }
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return await self.post(body, content_type="application/x-www-form-urlencoded")
