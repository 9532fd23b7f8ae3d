"""Moderation: what people send and what the model answers, screened as it streams.

:class:`Moderator` scores texts for offensive language (0 to 1); :class:`ProfanityModerator`
is the packaged linear SVM of ``alt-profanity-check`` (about 8 ms a text on one core).
:class:`AnswerScreen` watches an answer as the model writes it::

    gate = screen.gate()
    for delta in model_stream:
        for shown in gate.feed(delta):   # text cleared to show: whole sentences
            send(shown)
        if gate.blocked:                 # "offensive 0.97" or "leak: canary"
            break
    for shown in gate.close(): send(shown)

Text is released a sentence (or a line, or 200 characters) at a time, after the answer so
far has been checked: nothing offensive or leaking is ever shown, even for a moment. A
blocked answer is replaced by :data:`SAFE_REPLY`, stored with its reason
(``messages.blocked_reason``) and never used as training data.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from core.metrics import CANARY_LEAKS, MODERATION_BLOCKS
from core.prompt_guard import PromptGuard

__all__ = [
    "INPUT_REFUSAL",
    "SAFE_REPLY",
    "AnswerScreen",
    "Gate",
    "Moderator",
    "ProfanityModerator",
]

log = logging.getLogger(__name__)

SAFE_REPLY = (
    "Sorry, I can't give that answer: it broke my rules on what I may say. "
    "Please ask in another way."
)
INPUT_REFUSAL = (
    "I won't take that message: it reads as abusive or offensive. "
    "Please rephrase it and I'll gladly help."
)

RELEASE_CHARS = 200
"""Text without a sentence end is released (after its check) once this long."""

_BOUNDARY = re.compile(r"[.!?;:]\s|\n")


class Moderator(Protocol):
    """Scores texts for offensive language."""

    def score(self, texts: Sequence[str]) -> list[float]:
        """One probability in [0, 1] per text that it is offensive."""
        ...


class ProfanityModerator:
    """``alt-profanity-check``'s packaged classifier, loaded on first use."""

    def __init__(self) -> None:
        self._predict: Any = None
        self._lock = threading.Lock()

    def load(self) -> ProfanityModerator:
        """Load the classifier now (about 2 s) rather than on the first message."""
        with self._lock:
            if self._predict is None:
                from profanity_check import predict_prob

                self._predict = predict_prob
        return self

    def score(self, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        predict = self.load()._predict
        return [float(p) for p in predict(list(texts))]


@dataclass(frozen=True, slots=True)
class AnswerScreen:
    """What an answer is checked for: offensive language, and leaks of the instructions."""

    moderator: Moderator | None = None
    threshold: float = 0.8
    guard: PromptGuard | None = None
    instructions: str = ""
    """The system instructions as the model saw them (canary included)."""

    def gate(self) -> Gate:
        """A fresh gate for one answer."""
        return Gate(self)

    def check(self, text: str, latest: str) -> str | None:
        """Why the answer so far (``text``, ending in ``latest``) must not be shown, or None."""
        if self.guard is not None:
            leak = self.guard.leak(text, self.instructions)
            if leak is not None:
                CANARY_LEAKS.inc()
                return f"leak: {leak}"
        if self.moderator is not None and latest.strip():
            try:
                score = max(self.moderator.score([latest, text] if latest != text else [text]))
            except Exception:  # a broken classifier must not cost the person their answer
                log.exception("moderating an answer failed")
                return None
            if score >= self.threshold:
                MODERATION_BLOCKS.labels("output").inc()
                return f"offensive {score:.2f}"
        return None


class Gate:
    """Releases an answer's text only once it has been checked (see the module docstring)."""

    def __init__(self, screen: AnswerScreen) -> None:
        self._screen = screen
        self._shown = ""
        self._pending = ""
        self.blocked: str | None = None
        """The reason the answer was blocked, once it was."""

    @property
    def shown(self) -> str:
        """The text released so far."""
        return self._shown

    def feed(self, delta: str) -> list[str]:
        """Take the model's next text; return what may be shown now."""
        if self.blocked is not None:
            return []
        self._pending += delta
        cut = _last_boundary(self._pending)
        if cut == 0 and len(self._pending) < RELEASE_CHARS:
            return []
        if cut == 0:
            cut = len(self._pending)
        return self._release(cut)

    def close(self) -> list[str]:
        """The answer is complete: check and release the rest."""
        if self.blocked is not None or not self._pending:
            # The whole answer is checked once more: a leak may span the releases.
            if self.blocked is None and self._shown:
                self.blocked = self._screen.check(self._shown, self._shown)
            return []
        return self._release(len(self._pending))

    def _release(self, cut: int) -> list[str]:
        chunk, rest = self._pending[:cut], self._pending[cut:]
        reason = self._screen.check(self._shown + chunk, chunk)
        if reason is not None:
            self.blocked = reason
            self._pending = ""
            return []
        self._shown += chunk
        self._pending = rest
        return [chunk]


def _last_boundary(text: str) -> int:
    """The end of the last sentence or line in ``text`` (0 when there is none)."""
    end = 0
    for match in _BOUNDARY.finditer(text):
        end = match.end()
    return end
