"""What the fake Slack keeps: the workspace, and each call, message and shared file."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

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
