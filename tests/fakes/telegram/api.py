"""The Bot API methods the fake Telegram serves (a part of :class:`FakeTelegram`)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from aiohttp import web

from tests.fakes.telegram.http import _error, _image_size
from tests.fakes.telegram.records import (
    BOT,
    CAPTION_LIMIT,
    DOCUMENT_LIMIT,
    DOWNLOAD_LIMIT,
    MESSAGE_LIMIT,
    PHOTO_LIMIT,
    SentMessage,
    SentPhoto,
    Upload,
    _message_ids,
    _utf16,
)


class BotApi:
    """The Bot API methods of :class:`tests.fakes.telegram.server.FakeTelegram`."""

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
        if self.download_delay:
            await asyncio.sleep(self.download_delay)
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
