"""Streaming an answer's text token by token without ever splitting a character."""

from __future__ import annotations

from typing import Any

__all__ = ["Detokenizer"]


class Detokenizer:
    """Turns one answer's tokens into text deltas without splitting a multi-byte character.

    As transformers' ``TextStreamer`` does, it decodes the tokens since the last line break
    (special tokens skipped) and emits what is new; but it emits after every token, holding
    back only a character whose bytes are still incomplete.
    """

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = []
        self._sent = 0

    def push(self, token: int) -> str:
        """Add the next token; return the text it completes (often all of it, maybe none)."""
        self._ids.append(token)
        text: str = self._tokenizer.decode(self._ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            return ""
        delta = text[self._sent :]
        if text.endswith("\n"):  # a safe point to start over: keeps decoding cheap
            self._ids, self._sent = [], 0
        else:
            self._sent = len(text)
        return delta

    def flush(self) -> str:
        """At the end of the answer: the text still held back, if any."""
        text: str = self._tokenizer.decode(self._ids, skip_special_tokens=True)
        delta = text[self._sent :]
        self._ids, self._sent = [], 0
        return delta
