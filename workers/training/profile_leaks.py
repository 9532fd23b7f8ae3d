"""What keeps the profile data honest: no evaluation word in training, served-form canaries.

Shared by the stages of :mod:`.profile_data` and :mod:`.profile_length`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

from config.settings import Settings
from core.generator import TokenCounter
from core.types import UserProfile
from workers.training.profile_eval_pool import EVAL
from workers.training.profile_pools import Pools
from workers.training.profile_prompt import prompt_for

__all__ = ["canary", "chitchat", "chitchat_rows", "eval_terms", "mentions"]


def canary(rng: random.Random) -> str:
    """A prompt-guard canary of the served form, as each serving process plants its own."""
    return "PX-" + "".join(rng.choice("0123456789ABCDEF") for _ in range(12))


def chitchat(exclude: set[str]) -> list[tuple[str, str, str]]:
    """The packaged chitchat exchanges (key, said, reply) but those keyed in ``exclude``."""
    from workers.training.regression import _exchanges

    return [e for e in _exchanges() if e[0] not in exclude]


def eval_terms(pools: Pools = EVAL) -> list[str]:
    """The words of an evaluation pool that no training row may contain."""
    return [
        *pools.names,
        *pools.places,
        *(job.split(" ", 1)[1] for job in pools.jobs),
        *(pet for _, pet in pools.pets),
        *(hobby for hobby, _, _ in pools.hobbies),
        *(diet for diet, _, _ in pools.diets),
        *(topic.question for topic in pools.topics),
        *pools.parley_questions,
        *pools.upset,
    ]


def mentions(text: str, terms: Sequence[str]) -> str | None:
    """The first of ``terms`` in ``text`` (whole words, any case), or ``None``."""
    for term in terms:
        if re.search(rf"\b{re.escape(term)}\b", text, re.I):
            return term
    return None


def chitchat_rows(
    settings: Settings, tokens: TokenCounter, rng: random.Random, rows: int, share: float
) -> list[dict[str, Any]]:
    """Plain chitchat rows (no profile) to make up ``share`` of a stage with ``rows`` of its
    own: none of the nightly regression set, none that names an evaluation word."""
    from workers.training.regression import regression_set

    held = {item.key for item in regression_set(256, 0)}
    wanted = int(rows * share / (1.0 - share))
    terms = eval_terms()
    found = []
    for key, said, reply in rng.sample(chitchat(held), wanted):
        if mentions(f"{said} {reply}", terms):
            continue
        prompt = prompt_for(settings, tokens, UserProfile(), said, canary=canary(rng))
        completion = [{"role": "assistant", "content": reply}]
        found.append({"kind": "chitchat", "key": key, "prompt": prompt, "completion": completion})
    return found
