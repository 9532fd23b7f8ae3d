"""How a message reads: negative, neutral or positive, how strongly, and which words say so.

A :class:`SentimentClassifier` labels texts and explains one label with word attributions.
The real one, a fine-tuned MiniLM, lives in :mod:`workers.sentiment`; the
:class:`LexiconSentimentClassifier` here counts words from a tiny list, instantly and
deterministically, for tests of the parts that only consume sentiment.

:func:`running_mood` folds successive messages into one number per person or chat, so that
one grumpy line does not swing how Parley answers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Protocol

__all__ = [
    "LexiconSentimentClassifier",
    "Mood",
    "Sentiment",
    "SentimentClassifier",
    "running_mood",
]


class Mood(StrEnum):
    """The three labels, in the order of the classifier's outputs."""

    NEGATIVE = "negative"
    NEUTRAL = "neutral"
    POSITIVE = "positive"


@dataclass(frozen=True, slots=True)
class Sentiment:
    """A label, a signed intensity in [-1, 1] (negative to positive) and how sure it is (0-1)."""

    label: Mood
    score: float
    confidence: float

    def __post_init__(self) -> None:
        if not -1.0 <= self.score <= 1.0:
            raise ValueError(f"score must lie in [-1, 1], got {self.score}")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence must lie in [0, 1], got {self.confidence}")


class SentimentClassifier(Protocol):
    """Labels texts and explains a label word by word."""

    def classify(self, texts: Sequence[str]) -> list[Sentiment]:
        """One :class:`Sentiment` per text, in order."""
        ...

    def explain(self, text: str) -> list[tuple[str, float]]:
        """Each word of ``text`` in order, with its attribution toward the predicted label."""
        ...


def running_mood(previous: float | None, new: Sentiment, weight: float = 0.3) -> float:
    """Exponential moving average of sentiment scores; the first message sets it outright."""
    if not 0.0 < weight <= 1.0:
        raise ValueError(f"weight must lie in (0, 1], got {weight}")
    if previous is None:
        return new.score
    return (1.0 - weight) * previous + weight * new.score


_WORD = re.compile(r"[\w']+")

DEFAULT_LEXICON: Mapping[str, float] = MappingProxyType(
    {
        "love": 1.0,
        "great": 1.0,
        "excellent": 1.0,
        "awesome": 1.0,
        "wonderful": 1.0,
        "thanks": 0.6,
        "thank": 0.6,
        "good": 0.6,
        "nice": 0.6,
        "happy": 0.8,
        "fine": 0.2,
        "hate": -1.0,
        "horrible": -1.0,
        "terrible": -1.0,
        "awful": -1.0,
        "worst": -1.0,
        "bad": -0.6,
        "wrong": -0.6,
        "broken": -0.6,
        "sad": -0.8,
        "angry": -0.8,
        "annoying": -0.6,
    }
)


@dataclass(frozen=True, slots=True)
class LexiconSentimentClassifier:
    """Sums word scores from a small lexicon; ``not`` flips the next word. A fake for tests.

    A text's score is the sum of its words' scores clipped to [-1, 1]; beyond ``neutral_band``
    it reads as negative or positive. Attributions are the word scores, signed toward the label.
    """

    lexicon: Mapping[str, float] = field(default_factory=lambda: DEFAULT_LEXICON)
    neutral_band: float = 0.3

    def _word_scores(self, text: str) -> list[tuple[str, float]]:
        scored: list[tuple[str, float]] = []
        flip = False
        for match in _WORD.finditer(text):
            word = match.group()
            value = self.lexicon.get(word.lower(), 0.0)
            scored.append((word, -value if flip else value))
            # "not good" reads as bad; only the next word is flipped, as simple as it gets.
            flip = word.lower() in {"not", "never", "no"} or word.lower().endswith("n't")
        return scored

    def _sentiment(self, text: str) -> Sentiment:
        score = max(-1.0, min(1.0, sum(v for _, v in self._word_scores(text))))
        if score <= -self.neutral_band:
            label = Mood.NEGATIVE
        elif score >= self.neutral_band:
            label = Mood.POSITIVE
        else:
            label = Mood.NEUTRAL
        confidence = 0.5 + abs(score) / 2 if label is not Mood.NEUTRAL else 1.0 - abs(score)
        return Sentiment(label, score, confidence)

    def classify(self, texts: Sequence[str]) -> list[Sentiment]:
        """Label each text by its lexicon sum."""
        return [self._sentiment(text) for text in texts]

    def explain(self, text: str) -> list[tuple[str, float]]:
        """Word scores, positive where a word pushes toward the predicted label."""
        label = self._sentiment(text).label
        sign = -1.0 if label is Mood.NEGATIVE else 1.0
        return [(word, sign * value) for word, value in self._word_scores(text)]
