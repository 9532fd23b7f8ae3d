"""The fixed regression set: ordinary chat exchanges fine-tuning must not break.

Drawn from the packaged ``chitchat-dataset`` (open-domain conversations): the first turn of
a conversation is the prompt, the second (the other speaker's) is the reply. A seeded sample
of short exchanges is taken, so every run is measured on the same prompts; none of it is
ever trained on.
"""

from __future__ import annotations

import importlib.resources
import json
import random
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["RegressionItem", "regression_set"]

_MAX_CHARS = 160


@dataclass(frozen=True, slots=True)
class RegressionItem:
    """One chitchat exchange: its id in the corpus, the prompt and the reply."""

    key: str
    prompt: tuple[dict[str, str], ...]
    reply: str


@lru_cache(maxsize=1)
def _exchanges() -> tuple[tuple[str, str, str], ...]:
    path = importlib.resources.files("chitchat_dataset") / "dataset.json"
    conversations = json.loads(path.read_text(encoding="utf-8"))
    found = []
    for key in sorted(conversations):
        turns = conversations[key].get("messages") or []
        if len(turns) < 2:
            continue
        prompt = " ".join(m["text"].strip() for m in turns[0]).strip()
        reply = " ".join(m["text"].strip() for m in turns[1]).strip()
        if 8 <= len(prompt) <= _MAX_CHARS and 8 <= len(reply) <= _MAX_CHARS:
            found.append((key, prompt, reply))
    return tuple(found)


def regression_set(size: int, seed: int = 0) -> list[RegressionItem]:
    """``size`` exchanges chosen by ``seed`` (the same ones every time for the same pair)."""
    exchanges = _exchanges()
    chosen = random.Random(seed).sample(exchanges, min(size, len(exchanges)))
    return [
        RegressionItem(key, ({"role": "user", "content": prompt},), reply)
        for key, prompt, reply in chosen
    ]
