"""The files of a Slack message that Parley can read, as core attachments.

Audio clips recorded in Slack (``subtype: slack_audio``), audio files and images shared in
a message become :class:`core.media.Attachment`\\ s. Their ``fetch`` asks ``files.info``
for the file (its size, and the ``url_private_download`` address) and downloads it with the
bot token, stopping as soon as it is larger than the limit::

    files = SlackFiles(client)
    message = files.with_attachments(message, body["event"])

Needs the ``files:read`` scope; without it Slack answers ``missing_scope``, which is logged
with the scope to add, and the person is told the file could not be downloaded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import httpx
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from core.intake import FileRef
from core.media import Attachment, Fetch, MediaError, MediaKind, too_large
from core.types import Message

__all__ = ["DOWNLOAD_TIMEOUT_S", "SlackFiles", "kind_of"]

log = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 60.0


def kind_of(file: Mapping[str, Any]) -> MediaKind | None:
    """What Parley makes of a Slack file object; ``None`` for what it cannot read."""
    mime = file.get("mimetype")
    mime = mime if isinstance(mime, str) else ""
    if file.get("subtype") == "slack_audio":
        return MediaKind.VOICE
    if mime.startswith("audio/"):
        return MediaKind.AUDIO
    if mime.startswith("image/"):
        return MediaKind.IMAGE
    return None


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class SlackFiles:
    """Turns the files of Slack events into attachments that download with the bot token."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client

    def attachments(self, event: Mapping[str, Any]) -> tuple[Attachment, ...]:
        """The readable files of one event."""
        files = event.get("files")
        if not isinstance(files, list):
            return ()
        found = []
        for file in files:
            if not isinstance(file, Mapping) or not isinstance(file.get("id"), str):
                continue
            kind = kind_of(file)
            if kind is None:
                continue
            size = _number(file.get("size"))
            millis = _number(file.get("duration_ms"))
            found.append(
                Attachment(
                    kind=kind,
                    fetch=self._fetcher(file["id"], kind),
                    ref=file["id"],
                    mime=file.get("mimetype"),
                    size=int(size) if size is not None else None,
                    duration=millis / 1000 if millis is not None else None,
                    name=file.get("name"),
                )
            )
        return tuple(found)

    def with_attachments(self, message: Message, event: Mapping[str, Any]) -> Message:
        """``message`` with the readable files of the event it came from."""
        found = self.attachments(event)
        return replace(message, attachments=found) if found else message

    def reopen(self, file: FileRef) -> Fetch:
        """Downloads a file again by its id (an intake taken over after a restart)."""
        return self._fetcher(file.ref, file.kind)

    def _fetcher(self, file_id: str, kind: MediaKind) -> Fetch:
        async def fetch(limit: int) -> bytes:
            return await self.download(file_id, kind, limit)

        return fetch

    async def download(self, file_id: str, kind: MediaKind, limit: int) -> bytes:
        """A file's bytes: ``files.info``, then its private URL with the bot token."""
        try:
            info = (await self._client.files_info(file=file_id)).get("file") or {}
        except SlackApiError as exc:
            error = exc.response.get("error")
            if error == "missing_scope":
                log.warning(
                    "Slack refused files.info: add the files:read scope under OAuth & "
                    "Permissions and reinstall the app"
                )
            raise MediaError(
                f"I could not download your {kind.label} from Slack ({error}).",
                reason="download",
            ) from exc
        size = _number(info.get("size"))
        if size is not None and size > limit:
            raise too_large(kind, int(size), limit)
        url = info.get("url_private_download") or info.get("url_private")
        if not isinstance(url, str):
            raise MediaError(f"Slack did not let me download your {kind.label}.", reason="download")
        headers = {"Authorization": f"Bearer {self._client.token}"}
        data = bytearray()
        # httpx drops the Authorization header on a redirect to another host.
        async with (
            httpx.AsyncClient(follow_redirects=True, timeout=DOWNLOAD_TIMEOUT_S) as http,
            http.stream("GET", url, headers=headers) as response,
        ):
            response.raise_for_status()
            if response.headers.get("content-type", "").startswith("text/html"):
                # Slack's answer to a token that may not read the file is its login page.
                log.warning(
                    "Slack sent a web page for file %s: check the files:read scope", file_id
                )
                raise MediaError(
                    f"Slack did not let me download your {kind.label}.", reason="download"
                )
            async for chunk in response.aiter_bytes():
                data.extend(chunk)
                if len(data) > limit:
                    raise too_large(kind, len(data), limit)
        return bytes(data)
