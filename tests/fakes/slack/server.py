"""The fake Slack server: lifecycle, scripting, Socket Mode, and what each channel shows."""

from __future__ import annotations

import asyncio
import itertools
import json
from types import TracebackType
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.slack.records import (
    _NEEDED,
    BOT_SCOPES,
    Call,
    SentMessage,
    SharedFile,
    _file_ids,
    _Upload,
)
from tests.fakes.slack.web_api import WebApi


class FakeSlack(WebApi):
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
