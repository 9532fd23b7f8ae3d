"""Markdown from the model to Slack mrkdwn, split into messages Slack accepts.

Usage::

    from bots.slack.render import answer_blocks, split_mrkdwn, to_mrkdwn

    for part in split_mrkdwn(to_mrkdwn(reply.text)):
        await client.chat_postMessage(channel=..., text=part, blocks=answer_blocks(part))

Everything the model writes is shown, never interpreted: ``&``, ``<`` and ``>`` are escaped
so that ``<!channel>``, ``<@U…>`` or ``<https://…|label>`` stay plain text, and the words
``@channel``, ``@here`` and ``@everyone`` get a zero-width space after the ``@`` so that
they can never broadcast. Simple Markdown becomes mrkdwn: bold, italics, strike-through,
headings, bullets and links (shown as ``label (url)``, so no label can hide its address).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "FEEDBACK_BAD",
    "FEEDBACK_GOOD",
    "MAX_CHARS",
    "answer_blocks",
    "escape",
    "split_mrkdwn",
    "to_mrkdwn",
]

MAX_CHARS = 2900
"""The most characters one message carries: under Slack's 3,000 for a section block."""

FEEDBACK_GOOD = "parley_feedback_good"
"""The action id of the 👍 button; its value is the answer id."""

FEEDBACK_BAD = "parley_feedback_bad"
"""The action id of the 👎 button; its value is the answer id."""

FENCE = "```"
_ZWSP = "\u200b"
_BROADCAST = re.compile(r"@(?=(?:everyone|channel|here)\b)", re.IGNORECASE)
_INLINE_CODE = re.compile(r"(`[^`\n]+`)")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+")
_LINK = re.compile(r"!?\[([^\]\n]*)\]\(\s*([^)\s]+)\s*\)")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC = re.compile(r"(?<![\w*])\*(?=[^\s*])([^*\n]+?)(?<=[^\s*])\*(?![\w*])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_BOLD_MARK = "\x01"
_ENTITY_TAIL = re.compile(r"&[a-z]{0,4}$")
_LANGUAGE = re.compile(r"[\w+#.-]*\s*")


def escape(text: str) -> str:
    """Escape Slack's three control characters and defuse broadcast words."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _BROADCAST.sub("@" + _ZWSP, text)


def _inline(text: str) -> str:
    """Convert one line of prose (no code) from Markdown to mrkdwn; ``text`` is escaped."""
    text = _LINK.sub(lambda m: f"{m[1]} ({m[2]})" if m[1] and m[1] != m[2] else m[2], text)
    text = _BOLD.sub(lambda m: f"{_BOLD_MARK}{m[2]}{_BOLD_MARK}", text)
    text = _ITALIC.sub(r"_\1_", text)
    text = _STRIKE.sub(r"~\1~", text)
    return text.replace(_BOLD_MARK, "*")


def _line(line: str) -> str:
    """Convert one line outside code fences, leaving inline code spans as they are."""
    heading = _HEADING.match(line)
    if heading:
        line = f"**{heading[1]}**"
    line = _BULLET.sub(lambda m: f"{m[1]}• ", line)
    parts = _INLINE_CODE.split(line)
    return "".join(
        escape(part) if i % 2 else _inline(escape(part).replace(_BOLD_MARK, ""))
        for i, part in enumerate(parts)
    )


def to_mrkdwn(markdown: str) -> str:
    """Render the model's Markdown as Slack mrkdwn in which nothing from the model is markup."""
    out: list[str] = []
    in_fence = False
    for line in markdown.replace("\r\n", "\n").split("\n"):
        if _toggles(line):
            opener = line.lstrip()[len(FENCE) :] if line.lstrip().startswith(FENCE) else None
            if not in_fence and opener is not None and _LANGUAGE.fullmatch(opener):
                # Slack would show a fence's language tag as code: keep the fence, drop the tag.
                out.append(FENCE)
            else:
                out.append(escape(line))
            in_fence = not in_fence
            continue
        out.append(escape(line) if in_fence else _line(line))
    return "\n".join(out)


def _toggles(line: str) -> bool:
    """True when a line opens or closes a code fence."""
    return line.count(FENCE) % 2 == 1


def _paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs; a code fence stays whole however many blank lines."""
    units: list[str] = []
    current: list[str] = []
    in_fence = False
    for line in text.split("\n"):
        if not in_fence and not line.strip():
            if current:
                units.append("\n".join(current))
                current = []
            continue
        current.append(line)
        if _toggles(line):
            in_fence = not in_fence
    if current:
        units.append("\n".join(current))
    return units


def _cut(line: str, limit: int) -> list[str]:
    """Break an over-long line at spaces where possible, never inside an ``&…;`` entity."""
    pieces: list[str] = []
    while len(line) > limit:
        window = line[:limit]
        at = window.rfind(" ")
        if at < limit // 2:
            at = limit
            tail = _ENTITY_TAIL.search(window)
            if tail:
                at = tail.start()
        pieces.append(line[:at].rstrip())
        line = line[at:].lstrip(" ")
    pieces.append(line)
    return pieces


def _hard_split(unit: str, limit: int) -> list[str]:
    """Split one over-long paragraph at line breaks, closing and reopening any open fence."""
    room = limit - len(FENCE) - 1  # what is left once a fence is closed at the end
    pieces: list[str] = []
    lines: list[str] = []
    size = 0
    in_fence = False
    for whole in unit.split("\n"):
        for line in _cut(whole, room - len(FENCE) - 1):
            if lines and size + 1 + len(line) > room:
                pieces.append("\n".join([*lines, FENCE] if in_fence else lines))
                lines = [FENCE] if in_fence else []
                size = len(FENCE) if in_fence else 0
            size += (1 if lines else 0) + len(line)
            lines.append(line)
            if _toggles(line):
                in_fence = not in_fence
    if lines:
        pieces.append("\n".join(lines))
    return pieces


def split_mrkdwn(text: str, limit: int = MAX_CHARS) -> list[str]:
    """Split rendered text into messages of at most ``limit`` characters.

    Splits fall between paragraphs; a paragraph longer than a message is split between
    lines (a code fence is closed at the end of one message and reopened in the next),
    and a line longer than a message between words. Empty text gives one ``"…"``.
    """
    parts: list[str] = []
    current = ""
    for unit in _paragraphs(text):
        for piece in [unit] if len(unit) <= limit else _hard_split(unit, limit):
            joined = f"{current}\n\n{piece}" if current else piece
            if len(joined) <= limit:
                current = joined
            else:
                parts.append(current)
                current = piece
    if current:
        parts.append(current)
    return parts or ["…"]


def answer_blocks(text: str, answer_id: int | None = None) -> list[dict[str, Any]]:
    """Block Kit for one message: the text, and 👍/👎 buttons when it ends an answer."""
    blocks: list[dict[str, Any]] = [
        # verbatim: Slack must not turn the model's words into links or mentions.
        {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}
    ]
    if answer_id is not None:
        blocks.append(
            {
                "type": "actions",
                "block_id": "parley_feedback",
                "elements": [
                    _button(FEEDBACK_GOOD, "👍", answer_id),
                    _button(FEEDBACK_BAD, "👎", answer_id),
                ],
            }
        )
    return blocks


def _button(action_id: str, label: str, answer_id: int) -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": label, "emoji": True},
        "value": str(answer_id),
    }
