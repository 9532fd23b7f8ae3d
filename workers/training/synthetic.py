"""Synthetic feedback with a known answer, for tests and the benchmark.

:func:`signed_feedback` makes, for each prompt, two answers that differ only by a trait a
model can learn: the liked answer ends with a fixed sign-off (``— Parley``), the disliked one
does not. With ``labels="random"`` the thumbs are drawn by a seeded coin instead (nothing
consistent to learn), and with ``labels="contradictory"`` every answer is both liked and
disliked by different people.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Literal

from core.feedback_data import FeedbackRecord
from core.types import ChatTurn, Rating, Role

__all__ = ["SIGN_OFF", "signed_feedback"]

SIGN_OFF = " — Parley"

_TOPICS = (
    "the weather", "pasta", "a good book", "Python", "my cat", "running", "music",
    "the weekend", "coffee", "travel", "gardening", "chess", "the sea", "bread", "trains",
    "birds", "tea", "painting", "the moon", "football", "jazz", "bicycles", "snow", "maps",
)  # fmt: skip
_OPENERS = ("Tell me about", "Say something on", "Any thoughts on", "What about")
_ANSWERS = ("{t} is lovely.", "I like {t}.", "{t} is fun.", "Ah, {t}!")
_SYSTEM = "Be brief."


def signed_feedback(
    prompts: int,
    *,
    people: int = 8,
    labels: Literal["trait", "random", "contradictory"] = "trait",
    seed: int = 0,
    start: datetime | None = None,
    trusted: bool = True,
) -> list[FeedbackRecord]:
    """Feedback on ``prompts`` prompts from ``people`` people (two or four records each)."""
    rng = random.Random(seed)
    when = start or datetime(2024, 1, 1, tzinfo=UTC)
    records: list[FeedbackRecord] = []

    def add(prompt: tuple[ChatTurn, ...], answer: str, rating: Rating) -> None:
        n = len(records)
        records.append(
            FeedbackRecord(
                feedback_id=n + 1,
                answer_id=n + 1,
                person=f"person-{rng.randrange(people)}",
                platform="test",
                trusted=trusted,
                allows_training=True,
                prompt=prompt,
                answer=answer,
                rating=rating,
                correction=None,
                model_version="test",
                given_at=when + timedelta(minutes=n),
            )
        )

    for i in range(prompts):
        topic = _TOPICS[i % len(_TOPICS)]
        question = f"{_OPENERS[(i // len(_TOPICS)) % len(_OPENERS)]} {topic} (#{i})"
        prompt = (ChatTurn(Role.SYSTEM, _SYSTEM), ChatTurn(Role.USER, question))
        plain = _ANSWERS[i % len(_ANSWERS)].format(t=topic).capitalize()
        signed = plain + SIGN_OFF
        if labels == "trait":
            add(prompt, signed, Rating.GOOD)
            add(prompt, plain, Rating.BAD)
        elif labels == "random":
            first = rng.random() < 0.5
            add(prompt, signed, Rating.GOOD if first else Rating.BAD)
            add(prompt, plain, Rating.BAD if first else Rating.GOOD)
        else:
            for answer in (signed, plain):
                add(prompt, answer, Rating.GOOD)
                add(prompt, answer, Rating.BAD)
    return records
