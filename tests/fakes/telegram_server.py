"""A fake Telegram Bot API server, for the real python-telegram-bot client to talk to.

It serves ``/bot<TOKEN>/<method>`` on 127.0.0.1 (a free port), records every call, keeps
the bot's messages per chat as a person would see them, and enforces the Telegram rules
Parley must respect (message length in UTF-16 units, no edit that changes nothing, valid
button data, photos that are pictures). Tests script it: queue updates for getUpdates, make
the next calls of a method fail with 429 or be refused, and read what reached the chat::

    async with FakeTelegram() as telegram:
        options = TelegramOptions(token=telegram.token, api_url=telegram.api_url)
        telegram.push(private_message("hello"))
        await telegram.wait_until(lambda: telegram.texts(ADA["id"]))
        telegram.refuse_next("sendPhoto", "Bad Request: not enough rights to send photos")
        assert telegram.photos(ADA["id"])[0].data.startswith(b"\x89PNG")

Photos (``sendPhoto``, a multipart upload) are kept apart from text messages: read them
with :meth:`FakeTelegram.photos`; :meth:`FakeTelegram.messages` and ``texts`` show text only.

Files people send (voice notes, photos) are held with :meth:`FakeTelegram.add_file`; the
client finds them with ``getFile`` and downloads them from ``/file/bot<TOKEN>/<file_path>``
as from Telegram (``getFile`` refuses files over 20 MB, as the Bot API does)::

    file_id = telegram.add_file(ogg_bytes)
    telegram.push(voice_message(file_id, duration=3, size=len(ogg_bytes)))

The module-level builders (:func:`private_message`, :func:`group_message`,
:func:`topic_message`, :func:`photo_message`, :func:`callback_query`, ...) return updates as
the JSON dicts Telegram sends. Updates and messages are numbered from shared counters, so
the ids of people's and the bot's messages never collide.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web

__all__ = [
    "ADA",
    "BOB",
    "BOT",
    "GROUP",
    "OTHER_BOT",
    "Call",
    "FakeTelegram",
    "SentMessage",
    "SentPhoto",
    "Upload",
    "callback_query",
    "edited",
    "group_message",
    "photo_message",
    "private_message",
    "text_message",
    "topic_message",
    "voice_message",
]

TOKEN = "123456:TEST-fake-telegram-token"
BOT: dict[str, Any] = {
    "id": 4242,
    "is_bot": True,
    "first_name": "Parley",
    "username": "parley_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
ADA: dict[str, Any] = {"id": 111, "is_bot": False, "first_name": "Ada", "last_name": "Lovelace"}
BOB: dict[str, Any] = {"id": 222, "is_bot": False, "first_name": "Bob"}
OTHER_BOT: dict[str, Any] = {
    "id": 999,
    "is_bot": True,
    "first_name": "Other",
    "username": "other_bot",
}
GROUP: dict[str, Any] = {"id": -100500, "type": "supergroup", "title": "Team"}
FORUM: dict[str, Any] = {"id": -100600, "type": "supergroup", "title": "Forum", "is_forum": True}

MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024
PHOTO_LIMIT = 10 * 1024 * 1024  # bytes; Telegram's most for a photo sent by upload
DOWNLOAD_LIMIT = 20 * 1024 * 1024  # bytes; the most a bot may download through getFile
DOCUMENT_LIMIT = 50 * 1024 * 1024  # bytes; Telegram's most for a file sent by upload
_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
# Parameters that arrive JSON-encoded in a form field.
_JSON_FIELDS = {
    "reply_markup",
    "link_preview_options",
    "reply_parameters",
    "entities",
    "commands",
    "allowed_updates",
    "scope",
}
_INT_FIELDS = {"chat_id", "message_id", "message_thread_id", "offset", "limit", "timeout"}
_MENTION = re.compile(r"(?<![\w@])@[A-Za-z][A-Za-z0-9_]{3,31}")
_COMMAND = re.compile(r"/[A-Za-z0-9_]{1,32}(@[A-Za-z][A-Za-z0-9_]{3,31})?")

_update_ids = itertools.count(1000)
_message_ids = itertools.count(1)


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass(frozen=True, slots=True)
class Upload:
    """A file the client uploaded in a multipart request."""

    filename: str | None
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Call:
    """One Bot API request the client made, and when (``time.monotonic()``)."""

    method: str
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


@dataclass(slots=True)
class SentMessage:
    """A message the bot sent, as the chat shows it now."""

    chat_id: int
    message_id: int
    text: str
    thread_id: int | None = None
    reply_to: int | None = None
    reply_markup: dict[str, Any] | None = None
    edits: int = 0
    deleted: bool = False

    @property
    def buttons(self) -> list[dict[str, Any]]:
        """The inline buttons under the message, in order."""
        if self.reply_markup is None:
            return []
        return [b for row in self.reply_markup.get("inline_keyboard", []) for b in row]


@dataclass(frozen=True, slots=True)
class SentPhoto:
    """A photo the bot sent: the uploaded bytes exactly as received, and where they went."""

    chat_id: int
    message_id: int
    data: bytes
    filename: str | None
    thread_id: int | None = None
    reply_to: int | None = None
    caption: str | None = None


@dataclass(slots=True)
class _Failure:
    times: int
    retry_after: int


@dataclass(slots=True)
class _Refusal:
    times: int
    code: int
    description: str


@dataclass
class FakeTelegram:
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
    files: dict[str, bytes] = field(default_factory=dict)
    """Files people sent, by file_id (:meth:`add_file`)."""
    downloads: list[str] = field(default_factory=list)
    """The file paths the client downloaded, in order."""
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

    async def _api_getMe(self, params: dict[str, Any]) -> Any:
        return BOT

    async def _api_getFile(self, params: dict[str, Any]) -> Any:
        data = self.files.get(str(params.get("file_id")))
        if data is None:
            return _error(400, "Bad Request: invalid file_id")
        if len(data) > DOWNLOAD_LIMIT:
            return _error(400, "Bad Request: file is too big")
        file_id = str(params["file_id"])
        return {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_size": len(data),
            "file_path": f"documents/{file_id}.bin",
        }

    async def _download(self, request: web.Request) -> web.StreamResponse:
        """A file's bytes, at the Bot API's file address."""
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        path = request.match_info["path"]
        self.downloads.append(path)
        self._notify()
        file_id = path.removeprefix("documents/").removesuffix(".bin")
        data = self.files.get(file_id)
        if data is None:
            return web.Response(status=404, text="Not Found")
        return web.Response(body=data, content_type="application/octet-stream")

    async def _api_setMyCommands(self, params: dict[str, Any]) -> Any:
        self.commands = list(params.get("commands", []))
        return True

    async def _api_deleteWebhook(self, params: dict[str, Any]) -> Any:
        self.webhook = None
        return True

    async def _api_setWebhook(self, params: dict[str, Any]) -> Any:
        self.webhook = params
        return True

    async def _api_sendChatAction(self, params: dict[str, Any]) -> Any:
        return True

    async def _api_answerCallbackQuery(self, params: dict[str, Any]) -> Any:
        self.callback_answers.append(params)
        return True

    async def _api_getUpdates(self, params: dict[str, Any]) -> Any:
        offset = params.get("offset")
        if offset is not None:
            # Telegram forgets updates once a later offset confirms them.
            self._pending = [
                u for u in self._pending if u["update_id"] >= offset or u["_redeliver"]
            ]
        wait = float(params.get("timeout") or 0)
        if not self._pending and wait > 0 and self._changed is not None:
            # Long polling: answer as soon as an update is pushed, or empty at the timeout.
            with contextlib.suppress(TimeoutError):
                async with self._changed:
                    await asyncio.wait_for(
                        self._changed.wait_for(lambda: self._pending or self._closing), wait
                    )
        limit = int(params.get("limit") or 100)
        batch = self._pending[:limit]
        for update in batch:
            update["_redeliver"] = False
        allowed = params.get("allowed_updates")
        return [
            {k: v for k, v in u.items() if k != "_redeliver"}
            for u in batch
            if not allowed or any(kind in u for kind in allowed)
        ]

    async def _api_sendMessage(self, params: dict[str, Any]) -> Any:
        text = str(params.get("text", ""))
        problem = self._check_text(text) or self._check_markup(params.get("reply_markup"))
        if problem is not None:
            return problem
        chat_id = int(params["chat_id"])
        reply = params.get("reply_parameters") or {}
        sent = SentMessage(
            chat_id=chat_id,
            message_id=next(_message_ids),
            text=text.strip(),
            thread_id=params.get("message_thread_id"),
            reply_to=reply.get("message_id"),
            reply_markup=params.get("reply_markup"),
        )
        self._messages.setdefault(chat_id, []).append(sent)
        return self._message_json(sent)

    async def _api_sendPhoto(self, params: dict[str, Any]) -> Any:
        photo = params.get("photo")
        if not isinstance(photo, Upload):
            # A file_id or URL names a photo Telegram already has; this fake has none.
            return _error(400, "Bad Request: wrong remote file identifier specified")
        caption = params.get("caption")
        if caption is not None and _utf16(str(caption)) > CAPTION_LIMIT:
            return _error(400, "Bad Request: message caption is too long")
        if self.strict and (_image_size(photo.data) is None or len(photo.data) > PHOTO_LIMIT):
            return _error(400, "Bad Request: IMAGE_PROCESS_FAILED")
        chat_id = int(params["chat_id"])
        reply = params.get("reply_parameters") or {}
        sent = SentPhoto(
            chat_id=chat_id,
            message_id=next(_message_ids),
            data=photo.data,
            filename=photo.filename,
            thread_id=params.get("message_thread_id"),
            reply_to=reply.get("message_id"),
            caption=None if caption is None else str(caption),
        )
        self._photos.setdefault(chat_id, []).append(sent)
        return self._photo_json(sent)

    async def _api_sendDocument(self, params: dict[str, Any]) -> Any:
        document = params.get("document")
        if not isinstance(document, Upload):
            return _error(400, "Bad Request: wrong remote file identifier specified")
        if len(document.data) > DOCUMENT_LIMIT:
            return _error(400, "Bad Request: file is too big")
        chat_id = int(params["chat_id"])
        reply = params.get("reply_parameters") or {}
        sent = SentPhoto(
            chat_id=chat_id,
            message_id=next(_message_ids),
            data=document.data,
            filename=document.filename,
            thread_id=params.get("message_thread_id"),
            reply_to=reply.get("message_id"),
        )
        self._documents.setdefault(chat_id, []).append(sent)
        message = self._photo_json(sent)
        del message["photo"]
        message["document"] = {
            "file_id": f"document-{sent.message_id}",
            "file_unique_id": f"d{sent.message_id}",
            "file_name": sent.filename,
            "file_size": len(sent.data),
        }
        return message

    def documents(self, chat_id: int) -> list[SentPhoto]:
        """The files the bot sent as documents in a chat (sendDocument), oldest first."""
        return list(self._documents.get(chat_id, []))

    async def _api_editMessageText(self, params: dict[str, Any]) -> Any:
        sent = self._find(params)
        if sent is None:
            return _error(400, "Bad Request: message to edit not found")
        text = str(params.get("text", ""))
        problem = self._check_text(text) or self._check_markup(params.get("reply_markup"))
        if problem is not None:
            return problem
        markup = params.get("reply_markup")
        if self.strict and text.strip() == sent.text and markup == sent.reply_markup:
            return _error(
                400,
                "Bad Request: message is not modified: specified new message content and "
                "reply markup are exactly the same as a current content and reply markup "
                "of the message",
            )
        # Like Telegram: an edit without reply_markup removes the buttons.
        sent.text, sent.reply_markup = text.strip(), markup
        sent.edits += 1
        return self._message_json(sent)

    async def _api_editMessageReplyMarkup(self, params: dict[str, Any]) -> Any:
        sent = self._find(params)
        if sent is None:
            return _error(400, "Bad Request: message to edit not found")
        markup = params.get("reply_markup")
        if self.strict and markup == sent.reply_markup:
            return _error(400, "Bad Request: message is not modified")
        problem = self._check_markup(markup)
        if problem is not None:
            return problem
        sent.reply_markup = markup
        return self._message_json(sent)

    async def _api_deleteMessage(self, params: dict[str, Any]) -> Any:
        sent = self._find(params)
        if sent is None:
            return _error(400, "Bad Request: message to delete not found")
        sent.deleted = True
        return True

    def _find(self, params: dict[str, Any]) -> SentMessage | None:
        chat_id, message_id = int(params["chat_id"]), int(params["message_id"])
        for sent in self._messages.get(chat_id, []):
            if sent.message_id == message_id and not sent.deleted:
                return sent
        return None

    def _check_text(self, text: str) -> web.Response | None:
        if not self.strict:
            return None
        if not text.strip():
            return _error(400, "Bad Request: message text is empty")
        if _utf16(text.strip()) > MESSAGE_LIMIT:
            return _error(400, "Bad Request: message is too long")
        return None

    def _check_markup(self, markup: dict[str, Any] | None) -> web.Response | None:
        if not self.strict or markup is None:
            return None
        for row in markup.get("inline_keyboard", []):
            for button in row:
                data = button.get("callback_data")
                if data is not None and not 1 <= len(data.encode()) <= 64:
                    return _error(400, "Bad Request: BUTTON_DATA_INVALID")
        return None

    def _message_json(self, sent: SentMessage) -> dict[str, Any]:
        chat = self._chats.get(sent.chat_id) or {
            "id": sent.chat_id,
            "type": "private" if sent.chat_id > 0 else "supergroup",
        }
        message: dict[str, Any] = {
            "message_id": sent.message_id,
            "from": BOT,
            "chat": chat,
            "date": int(time.time()),
            "text": sent.text,
        }
        if sent.thread_id is not None:
            message["message_thread_id"] = sent.thread_id
            message["is_topic_message"] = True
        if sent.reply_markup is not None:
            message["reply_markup"] = sent.reply_markup
        return message

    def _photo_json(self, sent: SentPhoto) -> dict[str, Any]:
        chat = self._chats.get(sent.chat_id) or {
            "id": sent.chat_id,
            "type": "private" if sent.chat_id > 0 else "supergroup",
        }
        width, height = _image_size(sent.data) or (1, 1)
        message: dict[str, Any] = {
            "message_id": sent.message_id,
            "from": BOT,
            "chat": chat,
            "date": int(time.time()),
            "photo": [
                {
                    "file_id": f"photo-{sent.message_id}",
                    "file_unique_id": f"p{sent.message_id}",
                    "width": width,
                    "height": height,
                    "file_size": len(sent.data),
                }
            ],
        }
        if sent.caption is not None:
            message["caption"] = sent.caption
        if sent.thread_id is not None:
            message["message_thread_id"] = sent.thread_id
            message["is_topic_message"] = True
        return message


async def _params(request: web.Request) -> dict[str, Any]:
    """A request's parameters, whether sent as JSON, a form or multipart."""
    if request.content_type == "application/json":
        body = await request.read()
        loaded = json.loads(body) if body else {}
        return dict(loaded)
    params: dict[str, Any] = {}
    if request.method == "POST":
        for key, value in (await request.post()).items():
            if isinstance(value, web.FileField):
                params[key] = Upload(value.filename, value.content_type, value.file.read())
            else:
                params[key] = value
    params.update(request.query)
    for key, value in list(params.items()):
        if key in _JSON_FIELDS and isinstance(value, str):
            params[key] = json.loads(value)
        elif key in _INT_FIELDS and isinstance(value, str):
            params[key] = int(value)
    return params


def _image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG, (0, 0) for a JPEG, ``None`` for what is no picture."""
    if data.startswith(_PNG) and data[12:16] == b"IHDR" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data.startswith(_JPEG):
        return 0, 0  # the size is deep in the JPEG's segments; nothing here needs it
    return None


def _error(code: int, description: str) -> web.Response:
    return web.json_response(
        {"ok": False, "error_code": code, "description": description}, status=code
    )


# ---------------------------------------------------------------------- update builders


def _entities(text: str) -> list[dict[str, Any]]:
    """The entities Telegram's servers find in a typed text: @mentions and a /command."""
    found: list[dict[str, Any]] = []
    command = _COMMAND.match(text)
    if command is not None:
        found.append({"type": "bot_command", "offset": 0, "length": _utf16(command.group())})
    for match in _MENTION.finditer(text):
        offset = _utf16(text[: match.start()])
        found.append({"type": "mention", "offset": offset, "length": _utf16(match.group())})
    return found


def text_message(
    text: str | None,
    *,
    chat: dict[str, Any],
    sender: dict[str, Any] = ADA,
    entities: list[dict[str, Any]] | None = None,
    reply_to: dict[str, Any] | None = None,
    thread_id: int | None = None,
    update_id: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An update with a new message; entities are found in the text as Telegram does."""
    message: dict[str, Any] = {
        "message_id": next(_message_ids),
        "from": sender,
        "chat": chat,
        "date": int(time.time()),
        **extra,
    }
    if text is not None:
        message["text"] = text
        found = _entities(text) if entities is None else entities
        if found:
            message["entities"] = found
    if reply_to is not None:
        message["reply_to_message"] = reply_to
    if thread_id is not None:
        message["message_thread_id"] = thread_id
        message["is_topic_message"] = True
        if reply_to is None:
            # As in Telegram: a topic message "replies" to the topic's creation message.
            message["reply_to_message"] = {
                "message_id": thread_id,
                "from": ADA,
                "chat": chat,
                "date": int(time.time()),
                "forum_topic_created": {"name": "Topic", "icon_color": 7322096},
                "message_thread_id": thread_id,
                "is_topic_message": True,
            }
    return {
        "update_id": update_id if update_id is not None else next(_update_ids),
        **{"message": message},
    }


def private_message(text: str | None, *, sender: dict[str, Any] = ADA, **kw: Any) -> dict[str, Any]:
    """A message in the sender's private chat with the bot."""
    chat = {"id": sender["id"], "type": "private", "first_name": sender["first_name"]}
    return text_message(text, chat=chat, sender=sender, **kw)


def group_message(text: str | None, *, chat: dict[str, Any] = GROUP, **kw: Any) -> dict[str, Any]:
    """A message in a group; write "@parley_bot" in the text to mention the bot."""
    return text_message(text, chat=chat, **kw)


def topic_message(text: str | None, thread_id: int, **kw: Any) -> dict[str, Any]:
    """A message in one topic of a forum supergroup."""
    return text_message(text, chat=FORUM, thread_id=thread_id, **kw)


def photo_message(
    caption: str | None = None,
    *,
    chat: dict[str, Any] | None = None,
    file_id: str = "photo-1",
    size: int | None = None,
    **kw: Any,
) -> dict[str, Any]:
    """A photo, with an optional caption, in a private chat unless ``chat`` says otherwise.

    Telegram sends each photo in several sizes; here a thumbnail and ``file_id`` (the largest).
    """
    sender = kw.pop("sender", ADA)
    chat = chat or {"id": sender["id"], "type": "private", "first_name": sender["first_name"]}
    largest: dict[str, Any] = {"file_id": file_id, "file_unique_id": "p1", "width": 900}
    largest["height"] = 200
    if size is not None:
        largest["file_size"] = size
    thumbnail = {"file_id": "thumb-1", "file_unique_id": "t1", "width": 90, "height": 20}
    extra: dict[str, Any] = {"photo": [thumbnail, largest]}
    if caption is not None:
        extra["caption"] = caption
        found = _entities(caption)
        if found:
            extra["caption_entities"] = found
    return text_message(None, chat=chat, sender=sender, **extra, **kw)


def voice_message(
    file_id: str,
    *,
    duration: int,
    size: int,
    chat: dict[str, Any] | None = None,
    **kw: Any,
) -> dict[str, Any]:
    """A voice note (OGG/Opus) held by :meth:`FakeTelegram.add_file`, in a private chat."""
    sender = kw.pop("sender", ADA)
    chat = chat or {"id": sender["id"], "type": "private", "first_name": sender["first_name"]}
    voice = {
        "file_id": file_id,
        "file_unique_id": f"u{file_id}",
        "duration": duration,
        "mime_type": "audio/ogg",
        "file_size": size,
    }
    return text_message(None, chat=chat, sender=sender, voice=voice, **kw)


def edited(update: dict[str, Any]) -> dict[str, Any]:
    """The same message, edited: Telegram sends it as an ``edited_message`` update."""
    message = {**update["message"], "edit_date": int(time.time())}
    return {"update_id": next(_update_ids), "edited_message": message}


def callback_query(
    data: str, message: dict[str, Any], *, sender: dict[str, Any] = ADA
) -> dict[str, Any]:
    """A press of an inline button with ``data`` under the bot's ``message``."""
    return {
        "update_id": next(_update_ids),
        "callback_query": {
            "id": f"cq-{next(_update_ids)}",
            "from": sender,
            "chat_instance": "chat-instance-1",
            "data": data,
            "message": message,
        },
    }
