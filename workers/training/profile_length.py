"""The third stage's rows (``--stage length``): short answers that stop after their core.

After the first two stages the version followed tone and facts but not length: asked the
same question with ``length short`` and ``length detailed``, half of its short answers ran
on into the details, through the very sentence the detailed template had taught it ("Here
are some more details."). This mix teaches where a short answer ends: for every person two
questions answered both ways, the short answer the core sentence only and the detailed one
the core, then every detail, joined by varied words (or none) so that no fixed phrase
starts the details. Tone pairs, the other kinds of use (a third of each person's examples)
and a little chitchat keep what the earlier stages taught. Only training pools, as in
:func:`workers.training.profile_data.build_rows`.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from config.settings import Settings
from core.generator import TokenCounter
from workers.training.profile_leaks import canary as _canary
from workers.training.profile_leaks import chitchat_rows
from workers.training.profile_persona import personas
from workers.training.profile_pools import Topic
from workers.training.profile_probe import Probe, examples, tone_pair
from workers.training.profile_prompt import prompt_for
from workers.training.profile_train_pool import TRAIN

__all__ = ["DETAIL_LEADS", "detailed_answer", "length_rows"]

DETAIL_LEADS = (
    "",
    "",
    "A few more things help.",
    "In more detail:",
    "Beyond that, a few tips.",
    "Here is how to go about it.",
    "Some things that make a difference:",
)
"""What may come between a detailed answer's core and its details (often nothing)."""

_WRAP_UPS = (
    "Take it one step at a time and adjust as you go.",
    "With a little practice it soon becomes easy.",
    "Small, steady changes work better than big ones.",
    "",
)


def detailed_answer(topic: Topic, rng: random.Random) -> str:
    """The core, then every detail of ``topic``, with a varied lead and wrap-up."""
    parts = [topic.core, rng.choice(DETAIL_LEADS), *topic.details, rng.choice(_WRAP_UPS)]
    return " ".join(p for p in parts if p)


def length_rows(
    settings: Settings, tokens: TokenCounter, *, people: int, chitchat_share: float, seed: int
) -> list[dict[str, Any]]:
    """The rows of the module docstring, shuffled."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []

    def add(probe: Probe, answer: str) -> None:
        profile = probe.persona.profile(rng)
        prompt = prompt_for(
            settings, tokens, profile, probe.message, upset=probe.upset, canary=_canary(rng)
        )
        rows.append({"kind": probe.kind, "prompt": prompt, "completion": [_said(answer)]})

    for persona in personas(TRAIN, people, seed):
        for probe, answer in examples(persona, TRAIN, rng):
            if probe.kind not in ("tone", "length") and rng.random() < 1 / 3:
                add(probe, answer)
        for topic in rng.sample(TRAIN.topics, 2):
            short = replace(persona, length="short", tone=None)
            detailed = replace(persona, length="detailed", tone=None)
            add(Probe("length", short, topic.question, topic=topic.question), topic.core)
            add(
                Probe("length", detailed, topic.question, topic=topic.question),
                detailed_answer(topic, rng),
            )
        for probe, answer in tone_pair(persona, TRAIN.topics, rng):
            add(probe, answer)
    rows += chitchat_rows(settings, tokens, rng, len(rows), chitchat_share)
    rng.shuffle(rows)
    return rows


def _said(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}
