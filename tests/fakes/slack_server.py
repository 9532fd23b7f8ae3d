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

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import httpx
from aiohttp import WSMsgType, web

__all__ = [
    "BOT_ID",
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

TEAM = "T0TEAM"
BOT_USER = "U0PARLEY"
BOT_ID = "B0PARLEY"
BOT_SCOPES = frozenset(
    {
        "app_mentions:read",
        "channels:history",
        "groups:history",
        "chat:write",
        "commands",
        "files:read",
        "files:write",
        "im:history",
        "im:read",
        "im:write",
        "users:read",
    }
)
"""The scopes docs/slack-manifest.yaml asks for."""
_NEEDED = {
    "files.info": "files:read",
    "files.getUploadURLExternal": "files:write",
    "files.completeUploadExternal": "files:write",
}
"""Methods whose scope the fake checks; others are allowed to any valid token."""
_MAX_FILE = 1024 * 1024 * 1024  # bytes; Slack's most for one file

_ts = itertools.count(1)
_file_ids = itertools.count(1)


def next_ts() -> str:
    """A fresh, increasing Slack timestamp."""
    n = next(_ts)
    return f"{1_700_000_000 + n}.{n:06d}"


@dataclass(slots=True)
class Call:
    """One Web API call as the fake received it."""

    method: str
    args: dict[str, Any]
    at: float = field(default_factory=time.monotonic)
    status: int = 200


@dataclass(slots=True)
class SentMessage:
    """A message the bot posted, as it currently stands."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]] | None
    thread_ts: str | None
    args: dict[str, Any]
    edits: int = 0

    @property
    def shown(self) -> str:
        """What the person sees: the section blocks' text, or the plain text."""
        if self.blocks:
            return "\n".join(b["text"]["text"] for b in self.blocks if b.get("type") == "section")
        return self.text

    @property
    def buttons(self) -> list[dict[str, Any]]:
        """The buttons under the message."""
        return [
            element
            for block in self.blocks or []
            if block.get("type") == "actions"
            for element in block["elements"]
        ]


@dataclass(slots=True)
class SharedFile:
    """A file the bot uploaded and shared (files.completeUploadExternal), bytes as received."""

    id: str
    channel: str
    thread_ts: str | None
    filename: str
    title: str | None
    data: bytes
    initial_comment: str | None = None


@dataclass(slots=True)
class _Upload:
    """A file between files.getUploadURLExternal and files.completeUploadExternal."""

    filename: str
    length: int
    data: bytes | None = None


class FakeSlack:
    """A Slack Web API on 127.0.0.1 with a random port."""

    TOKEN = "xoxb-test-token"
    APP_TOKEN = "xapp-test-token"

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.messages: dict[tuple[str, str], SentMessage] = {}
        self.ephemeral: list[dict[str, Any]] = []
        self.responses: list[tuple[str, dict[str, Any]]] = []
        self._limited: dict[str, tuple[int, float]] = {}
        self.scopes: set[str] = set(BOT_SCOPES)
        """The bot token's scopes; remove one to make the methods that need it fail."""
        self.files: list[SharedFile] = []
        """Files shared into channels and threads, in the order they were shared."""
        self._uploads: dict[str, _Upload] = {}
        self.shared_by_people: dict[str, tuple[dict[str, Any], bytes]] = {}
        """Files people shared (:meth:`add_file`): the file object and its bytes, by id."""
        self.downloads: list[str] = []
        """Ids of the files downloaded from their private URL with the bot token."""
        self._broken_uploads = 0
        self.users: dict[str, str] = {"U1": "Ada", "U2": "Grace"}
        """Display names users.info knows; anyone else is user_not_found."""
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._socket: web.WebSocketResponse | None = None
        self._acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._envelopes = itertools.count(1)
        self.socket_connected = asyncio.Event()
        """Set once a Socket Mode client has connected and been greeted."""

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self) -> FakeSlack:
        """Start serving on a free port."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)  # slack_sdk GETs a few, e.g. users.info
        app.router.add_post("/hooks/{name}", self._hook)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/files-pri/{file_id}/download", self._download)
        app.router.add_get("/socket", self._socket_mode)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeSlack:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def api_url(self) -> str:
        """The Web API base URL for ``AsyncWebClient(base_url=...)``."""
        return f"http://127.0.0.1:{self.port}/api/"

    def response_url(self, name: str = "cmd") -> str:
        """A response_url (as in slash commands and actions) that this fake records."""
        return f"http://127.0.0.1:{self.port}/hooks/{name}"

    # ---- controls and inspection ------------------------------------------------------------

    def rate_limit(self, method: str, *, times: int = 1, retry_after: float = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with 429 and Retry-After."""
        self._limited[method] = (times, retry_after)

    def add_file(
        self,
        data: bytes,
        *,
        name: str,
        mimetype: str,
        subtype: str | None = None,
        duration_ms: int | None = None,
        size: int | None = None,
    ) -> dict[str, Any]:
        """A file a person shared; returns the file object to put in an event's ``files``.

        ``size`` overrides the size Slack reports (to claim a file is larger than it is).
        """
        file_id = f"F{next(_file_ids):08d}"
        file: dict[str, Any] = {
            "id": file_id,
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "filetype": name.rpartition(".")[2],
            "size": len(data) if size is None else size,
            "url_private": f"http://127.0.0.1:{self.port}/files-pri/{file_id}/download",
            "url_private_download": f"http://127.0.0.1:{self.port}/files-pri/{file_id}/download",
        }
        if subtype is not None:
            file["subtype"] = subtype
        if duration_ms is not None:
            file["duration_ms"] = duration_ms
        self.shared_by_people[file_id] = (file, data)
        return file

    def break_uploads(self, times: int = 1) -> None:
        """Answer the next ``times`` POSTs to an upload URL with 500 (Slack's file servers)."""
        self._broken_uploads = times

    def files_in(self, channel: str, thread_ts: str | None) -> list[SharedFile]:
        """The files shared in one thread (``None``: the channel's main line)."""
        return [f for f in self.files if f.channel == channel and f.thread_ts == thread_ts]

    def calls_of(self, method: str) -> list[Call]:
        """The calls of one method, in order (rate-limited ones included)."""
        return [call for call in self.calls if call.method == method]

    def posted(self, channel: str | None = None) -> list[SentMessage]:
        """The bot's current messages (optionally in one channel), oldest first."""
        return [m for m in self.messages.values() if channel is None or m.channel == channel]

    def in_thread(self, channel: str, thread_ts: str | None) -> list[SentMessage]:
        """The bot's messages in one thread (``None``: the channel's main line)."""
        return [m for m in self.posted(channel) if m.thread_ts == thread_ts]

    def visible(self, channel: str, ts: str) -> str:
        """The text a person sees in one message."""
        return self.messages[(channel, ts)].shown

    # ---- the server -------------------------------------------------------------------------

    async def _arguments(self, request: web.Request) -> dict[str, Any]:
        # slack_sdk sends some methods' arguments in the query string, even on a POST.
        query: dict[str, Any] = dict(request.query)
        if request.method == "GET":
            return query
        if request.content_type == "application/json":
            data = await request.json()
            return {**query, **data} if isinstance(data, dict) else query
        form = await request.post()
        args: dict[str, Any] = {**query, **{key: str(value) for key, value in form.items()}}
        for key in ("blocks", "attachments"):
            if isinstance(args.get(key), str):
                args[key] = json.loads(args[key])
        return args

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await self._arguments(request)
        call = Call(method, args)
        self.calls.append(call)
        times, wait = self._limited.get(method, (0, 0.0))
        if times > 0:
            self._limited[method] = (times - 1, wait)
            call.status = 429
            return web.json_response(
                {"ok": False, "error": "ratelimited"},
                status=429,
                headers={"Retry-After": f"{wait:g}"},
            )
        token = self.APP_TOKEN if method == "apps.connections.open" else self.TOKEN
        if request.headers.get("Authorization") != f"Bearer {token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        needed = _NEEDED.get(method)
        if needed is not None and needed not in self.scopes:
            return web.json_response(
                {
                    "ok": False,
                    "error": "missing_scope",
                    "needed": needed,
                    "provided": ",".join(sorted(self.scopes)),
                }
            )
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        result: dict[str, Any] = handler(args)
        return web.json_response(result)

    async def push(self, payload: dict[str, Any], *, retry_attempt: int = 0) -> dict[str, Any]:
        """Send an Events API payload over Socket Mode; return the client's acknowledgement.

        Waits for the acknowledgement: wrap it in a timeout where none should come.
        """
        assert self._socket is not None, "no Socket Mode client is connected"
        envelope_id = f"envelope-{next(self._envelopes)}"
        acked = asyncio.get_running_loop().create_future()
        self._acks[envelope_id] = acked
        await self._socket.send_json(
            {
                "envelope_id": envelope_id,
                "type": "events_api",
                "accepts_response_payload": False,
                "payload": payload,
                "retry_attempt": retry_attempt,
                "retry_reason": "timeout" if retry_attempt else "",
            }
        )
        return await acked

    async def _socket_mode(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._socket = socket
        await socket.send_json(
            {
                "type": "hello",
                "num_connections": 1,
                "debug_info": {"host": "fake-slack"},
                "connection_info": {"app_id": "A0PARLEY"},
            }
        )
        self.socket_connected.set()
        async for frame in socket:
            if frame.type == WSMsgType.TEXT:
                ack = json.loads(frame.data)
                waiter = self._acks.pop(ack.get("envelope_id", ""), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(ack)
        return socket

    async def _hook(self, request: web.Request) -> web.Response:
        self.responses.append((request.match_info["name"], await request.json()))
        return web.Response(text="ok")

    async def _upload(self, request: web.Request) -> web.Response:
        """An upload URL: takes the bytes of one file, as files.slack.com does."""
        file_id = request.match_info["file_id"]
        data = await request.read()
        self.calls.append(Call("upload", {"file_id": file_id, "length": len(data)}))
        upload = self._uploads.get(file_id)
        if upload is None:
            return web.Response(status=404, text="upload URL not found")
        if self._broken_uploads > 0:
            self._broken_uploads -= 1
            return web.Response(status=500, text="upload failed")
        if len(data) != upload.length:
            return web.Response(status=400, text=f"expected {upload.length} bytes")
        upload.data = data
        return web.Response(text=f"OK - {len(data)}")

    async def _download(self, request: web.Request) -> web.Response:
        """A file's private URL: its bytes with the bot token, Slack's login page without."""
        file_id = request.match_info["file_id"]
        if request.headers.get("Authorization") != f"Bearer {self.TOKEN}":
            return web.Response(text="<html>Sign in to Slack</html>", content_type="text/html")
        shared = self.shared_by_people.get(file_id)
        if shared is None:
            return web.Response(status=404, text="file not found")
        self.downloads.append(file_id)
        return web.Response(body=shared[1], content_type=shared[0]["mimetype"])

    def _files_info(self, args: dict[str, Any]) -> dict[str, Any]:
        shared = self.shared_by_people.get(str(args.get("file")))
        if shared is None:
            return {"ok": False, "error": "file_not_found"}
        return {"ok": True, "file": shared[0]}

    def _files_getUploadURLExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        filename = args.get("filename")
        length = str(args.get("length", ""))
        if not filename or not length.isdigit() or not 0 < int(length) <= _MAX_FILE:
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{next(_file_ids):08d}"
        self._uploads[file_id] = _Upload(str(filename), int(length))
        upload_url = f"http://127.0.0.1:{self.port}/upload/{file_id}"
        return {"ok": True, "upload_url": upload_url, "file_id": file_id}

    def _files_completeUploadExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        try:
            entries = json.loads(args.get("files", ""))
        except ValueError:
            return {"ok": False, "error": "invalid_arguments"}
        if not isinstance(entries, list) or not entries:
            return {"ok": False, "error": "invalid_arguments"}
        channel = args.get("channel_id") or None
        thread_ts = args.get("thread_ts") or None
        if thread_ts is not None and channel is None:
            return {"ok": False, "error": "invalid_arguments"}
        done: list[tuple[str, _Upload, str | None]] = []
        for entry in entries:
            upload = self._uploads.get(entry.get("id", ""))
            if upload is None or upload.data is None:
                return {"ok": False, "error": "file_not_found"}
            done.append((entry["id"], upload, entry.get("title")))
        result = []
        for file_id, upload, title in done:
            del self._uploads[file_id]
            assert upload.data is not None
            if channel is not None:
                self.files.append(
                    SharedFile(
                        file_id,
                        channel,
                        thread_ts,
                        upload.filename,
                        title,
                        upload.data,
                        args.get("initial_comment") or None,
                    )
                )
            result.append(
                {"id": file_id, "name": upload.filename, "title": title, "size": len(upload.data)}
            )
        return {"ok": True, "files": result}

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://test.slack.com/",
            "team": "Test Team",
            "user": "parley",
            "team_id": TEAM,
            "user_id": BOT_USER,
            "bot_id": BOT_ID,
        }

    @staticmethod
    def _invalid(args: dict[str, Any]) -> str | None:
        """The error Slack would give for a message's text and blocks, or None."""
        text = args.get("text")
        blocks = args.get("blocks")
        if not text and not blocks:
            return "no_text"
        if isinstance(text, str) and len(text) > 40_000:
            return "msg_too_long"
        for block in blocks or []:
            if block.get("type") == "section" and len(block["text"]["text"]) > 3000:
                return "invalid_blocks"
        return None

    def _apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/socket"}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = args.get("user", "")
        if user not in self.users:
            return {"ok": False, "error": "user_not_found"}
        name = self.users[user]
        return {
            "ok": True,
            "user": {
                "id": user,
                "name": name.lower(),
                "real_name": f"{name} Lovelace",
                "profile": {"display_name": name, "real_name": f"{name} Lovelace"},
            },
        }

    def _chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = args.get("channel")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        error = self._invalid(args)
        if error:
            return {"ok": False, "error": error}
        ts = next_ts()
        thread_ts = args.get("thread_ts") or None
        self.messages[(channel, ts)] = SentMessage(
            channel, ts, args.get("text", ""), args.get("blocks"), thread_ts, args
        )
        return {"ok": True, "channel": channel, "ts": ts, "message": {"text": args.get("text")}}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self.messages.get((args.get("channel", ""), args.get("ts", "")))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        error = self._invalid(args)
        if error:
            return {"ok": False, "error": error}
        message.text = args.get("text", "")
        message.blocks = args.get("blocks")
        message.edits += 1
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    def _chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        if self.messages.pop((args.get("channel", ""), args.get("ts", "")), None) is None:
            return {"ok": False, "error": "message_not_found"}
        return {"ok": True}

    def _chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("channel") or not args.get("user"):
            return {"ok": False, "error": "channel_not_found"}
        self.ephemeral.append(args)
        return {"ok": True, "message_ts": next_ts()}


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
