"""The fake Telegram Bot API server: lifecycle, scripting, and what reached each chat."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web

from tests.fakes.telegram.api import BotApi
from tests.fakes.telegram.http import _error, _params
from tests.fakes.telegram.records import (
    TOKEN,
    Call,
    SentMessage,
    SentPhoto,
    _Failure,
    _Flood,
    _Refusal,
    _update_ids,
)


@dataclass
class FakeTelegram(BotApi):
    """The fake server: start it (``async with``), point the client at :attr:`api_url`."""

    token: str = TOKEN
    strict: bool = True
    calls: list[Call] = field(default_factory=list)
    commands: list[dict[str, Any]] = field(default_factory=list)
    webhook: dict[str, Any] | None = None
    callback_answers: list[dict[str, Any]] = field(default_factory=list)
    errors: list[tuple[str, int, str]] = field(default_factory=list)
    """(method, code, description) of every refused call except scripted 429s."""
    _messages: dict[int, list[SentMessage]] = field(default_factory=dict)
    _chats: dict[int, dict[str, Any]] = field(default_factory=dict)
    _pending: list[dict[str, Any]] = field(default_factory=list)
    _photos: dict[int, list[SentPhoto]] = field(default_factory=dict)
    _documents: dict[int, list[SentPhoto]] = field(default_factory=dict)
    _failures: dict[str, _Failure] = field(default_factory=dict)
    _refusals: dict[str, _Refusal] = field(default_factory=dict)
    _floods: dict[int, _Flood] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    """Files people sent, by file_id (:meth:`add_file`)."""
    downloads: list[str] = field(default_factory=list)
    """The file paths the client downloaded, in order."""
    download_delay: float = 0.0
    """Seconds each file download waits before its bytes are sent (a slow network)."""
    _changed: asyncio.Condition | None = None
    _runner: web.AppRunner | None = None
    _closing: bool = False
    port: int = 0

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        self._changed = asyncio.Condition()
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Stop listening; long polls in progress return at once."""
        self._closing = True
        self._notify()
        await asyncio.sleep(0)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def api_url(self) -> str:
        """The Bot API base URL to give the client (the token follows it)."""
        return f"http://127.0.0.1:{self.port}/bot"

    # ------------------------------------------------------------------ scripting

    def push(self, update: dict[str, Any], *, redeliver: bool = False) -> dict[str, Any]:
        """Queue an update for getUpdates; ``redeliver`` sends it even if already confirmed."""
        self._remember_chats(update)
        self._pending.append({**update, "_redeliver": redeliver})
        self._notify()
        return update

    def add_file(self, data: bytes, file_id: str | None = None) -> str:
        """Hold a file a person sent; returns its file_id for a message's voice/photo."""
        file_id = file_id or f"file-{next(_update_ids)}"
        self.files[file_id] = data
        return file_id

    def fail_next(self, method: str, times: int = 1, *, retry_after: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with 429 Too Many Requests."""
        self._failures[method] = _Failure(times, retry_after)

    def flood(self, chat_id: int, retry_after: int, *, method: str | None = None) -> None:
        """Open a flood window in a chat at its next call (of ``method``, if named).

        That call, and every call into the chat in the ``retry_after`` seconds after it, get
        429 with the seconds left, as from Telegram; :meth:`flood_window` says when it was.
        """
        self._floods[chat_id] = _Flood(method, retry_after)

    def flood_window(self, chat_id: int) -> tuple[float, float] | None:
        """When the chat's flood window opened and ends (``time.monotonic()``), if it did."""
        flood = self._floods.get(chat_id)
        if flood is None or flood.start is None:
            return None
        return flood.start, flood.start + flood.retry_after

    def calls_into(self, chat_id: int) -> list[Call]:
        """The calls of any method that named the chat, in order."""
        return [c for c in self.calls if c.params.get("chat_id") == chat_id]

    def refuse_next(
        self, method: str, description: str, *, code: int = 400, times: int = 1
    ) -> None:
        """Refuse the next ``times`` calls of ``method`` with Telegram's ``description``.

        E.g. ``refuse_next("sendPhoto", "Bad Request: not enough rights to send photos to
        the chat")``, as in a group whose members may not send media; 403 descriptions
        ("Forbidden: bot was blocked by the user") become PTB's ``Forbidden``.
        """
        self._refusals[method] = _Refusal(times, code, description)

    async def wait_until(self, condition: Callable[[], object], within: float = 5.0) -> None:
        """Wait until ``condition()`` is true, re-checking after every call the client makes."""
        assert self._changed is not None
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(condition), within)

    async def settle(self, quiet: float = 0.3, within: float = 10.0) -> None:
        """Wait until the client has made no call (but polling) for ``quiet`` seconds."""

        def activity() -> int:
            return sum(c.method != "getUpdates" for c in self.calls)

        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            seen = activity()
            await asyncio.sleep(quiet)
            if activity() == seen:
                return
        raise TimeoutError("the client kept calling the server")

    # ------------------------------------------------------------------ reading

    def messages(self, chat_id: int, thread_id: int | None = None) -> list[SentMessage]:
        """The bot's messages in a chat (or one forum topic), oldest first."""
        return [
            m
            for m in self._messages.get(chat_id, [])
            if not m.deleted and (thread_id is None or m.thread_id == thread_id)
        ]

    def texts(self, chat_id: int, thread_id: int | None = None) -> list[str]:
        """What the bot's messages in a chat show now, oldest first."""
        return [m.text for m in self.messages(chat_id, thread_id)]

    def photos(self, chat_id: int, thread_id: int | None = None) -> list[SentPhoto]:
        """The photos the bot sent in a chat (or one forum topic), oldest first."""
        return [
            p
            for p in self._photos.get(chat_id, [])
            if thread_id is None or p.thread_id == thread_id
        ]

    def calls_to(self, method: str) -> list[Call]:
        """The calls of one method, in order."""
        return [c for c in self.calls if c.method == method]

    def as_message(self, sent: SentMessage) -> dict[str, Any]:
        """A bot message in Telegram's JSON form, e.g. to reply to it in an update."""
        return self._message_json(sent)

    # ------------------------------------------------------------------ serving

    def _notify(self) -> None:
        changed = self._changed
        if changed is None:
            return

        async def notify() -> None:
            async with changed:
                changed.notify_all()

        asyncio.get_running_loop().create_task(notify())

    def _remember_chats(self, update: dict[str, Any]) -> None:
        for key in ("message", "edited_message"):
            message = update.get(key)
            if message is not None:
                self._chats[message["chat"]["id"]] = message["chat"]

    def _flooded(self, method: str, params: dict[str, Any]) -> int | None:
        """The seconds to ask for when the call falls in its chat's flood window."""
        flood = self._floods.get(params.get("chat_id"))  # type: ignore[arg-type]
        if flood is None:
            return None
        now = time.monotonic()
        if flood.start is None:
            if flood.method not in (None, method):
                return None
            flood.start = now
        left = flood.start + flood.retry_after - now
        return math.ceil(left) if left > 0 else None

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        method = request.match_info["method"]
        params = await _params(request)
        self.calls.append(Call(method, params))
        try:
            failure = self._failures.get(method)
            if failure is not None and failure.times > 0:
                failure.times -= 1
                return web.json_response(
                    {
                        "ok": False,
                        "error_code": 429,
                        "description": f"Too Many Requests: retry after {failure.retry_after}",
                        "parameters": {"retry_after": failure.retry_after},
                    },
                    status=429,
                )
            flooded = self._flooded(method, params)
            if flooded is not None:
                return web.json_response(
                    {
                        "ok": False,
                        "error_code": 429,
                        "description": f"Too Many Requests: retry after {flooded}",
                        "parameters": {"retry_after": flooded},
                    },
                    status=429,
                )
            refusal = self._refusals.get(method)
            if refusal is not None and refusal.times > 0:
                refusal.times -= 1
                self.errors.append((method, refusal.code, refusal.description))
                return _error(refusal.code, refusal.description)
            handler = getattr(self, f"_api_{method}", None)
            if handler is None:
                self.errors.append((method, 404, "Not Found"))
                return _error(404, "Not Found")
            result = await handler(params)
            if isinstance(result, web.Response):
                payload = json.loads(result.text or "{}")
                self.errors.append((method, result.status, payload.get("description", "")))
                return result
            return web.json_response({"ok": True, "result": result})
        finally:
            self._notify()
