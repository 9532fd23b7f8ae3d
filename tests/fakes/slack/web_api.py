"""The Web API methods the fake Slack serves (a part of :class:`FakeSlack`)."""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.slack.records import (
    _MAX_FILE,
    BOT_ID,
    BOT_USER,
    TEAM,
    SentMessage,
    SharedFile,
    _file_ids,
    _Upload,
    next_ts,
)


class WebApi:
    """The Web API methods of :class:`tests.fakes.slack.server.FakeSlack`."""

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
