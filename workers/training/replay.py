"""Ordinary talk mixed into the training stages, so that learning feedback does not drift.

A night of consistent corrections ("open every answer with a greeting") is a strong, narrow
signal: trained on alone, the model carries it into every exchange and ordinary chitchat
gets less likely (the nightly gate's drift); a night of thumbs, mostly 👍 on the model's own
answers, sharpens it the same way. Rehearsal is the usual remedy: a share of the rows the
corrections' stage (and, as liked answers, the thumbs' stage) trains on are plain exchanges
from the packaged ``chitchat-dataset``, never any of the regression set the gate measures
drift on.
"""

from __future__ import annotations

import random
from typing import Any

from workers.training.options import TrainingOptions

__all__ = ["REPLAY_PERSON", "replay_count", "replay_rows"]

REPLAY_PERSON = "replay"
"""The ``person`` of a rehearsal row: nobody's feedback."""


def replay_count(rows: int, share: float, at_least: int = 0) -> int:
    """How many rehearsal rows make up ``share`` of a stage that has ``rows`` of its own,
    and never fewer than ``at_least`` (a small night's narrow signal drifts the most)."""
    if rows <= 0 or share <= 0.0:
        return 0
    return max(round(rows * share / (1.0 - share)), at_least)


def replay_rows(count: int, options: TrainingOptions) -> list[dict[str, Any]]:
    """``count`` chitchat exchanges as SFT rows, seeded, none of the regression set."""
    from workers.training.regression import _exchanges, regression_set

    held = {item.key for item in regression_set(options.regression_size, options.regression_seed)}
    pool = [e for e in _exchanges() if e[0] not in held]
    chosen = random.Random(options.seed).sample(pool, min(count, len(pool)))
    return [
        {
            "person": REPLAY_PERSON,
            "feedback_id": None,
            "replay": key,
            "prompt": [{"role": "user", "content": prompt}],
            "completion": [{"role": "assistant", "content": reply}],
        }
        for key, prompt, reply in chosen
    ]
