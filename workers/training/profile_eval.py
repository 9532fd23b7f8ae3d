"""Measuring profile following: held-out probes answered by the served path, and their rates.

Used by ``bench/personalization.py`` (base against the packaged version) and by the slow test of the
packaged version. The probes come from :func:`workers.training.profile_data.eval_probes`
(only evaluation pools); each prompt is built by Parley's prompt builder
(:func:`workers.training.profile_prompt.prompt_for`) and answered greedily by
:class:`workers.batching.BatchedGenerator`, all at once, with the responder's length rule
(at most ``SHORT_ANSWER_TOKENS`` for "short" and for an upset person).

The rates (:func:`measure`):

- ``name_recall``: "What is my name?" answers containing the name;
- ``greeting_name``: "Hi!" answers containing the name;
- ``fact_recall`` / ``fact_indirect`` / ``fact_use`` (both): answers containing the fact's
  word (the town, the job, the pet's name; "vegetarian" for a dinner idea, the hobby for
  weekend ideas, the town for a day out);
- ``name_claimed``: answers, over every probe of a named person, where Parley presents
  itself with the person's name ("I'm Aiyana", "My name is Aiyana", "call me Aiyana");
- ``length``: pairs of the same question from the same person with ``length short`` and
  ``length detailed``; compliant when the short answer has at most half the tokens of the
  detailed one;
- ``tone``: the same question with ``tone formal`` and ``tone casual``; a formal answer
  complies when it has no contraction (``'m 're 's 've 'll 'd n't``) and no casual word
  (hey, hi, yeah, awesome, cool, sure thing, no worries, totally, gonna); a casual answer
  when it has a contraction, an exclamation mark or one of those casual words;
- ``upset_acknowledged``: a frustrated person (``UPSET_GUIDANCE`` in the prompt) gets an
  acknowledgement (sorry, frustrat, understand, that sounds, upset, annoying, stressful).

:data:`TARGETS` are the issue's thresholds for the packaged version; the chitchat regression
NLL (:func:`regression_nll`) must not drift more than the nightly gate allows.
"""

from __future__ import annotations

import asyncio
import random
import re
from dataclasses import dataclass, field

from config.settings import Settings
from core.generator import GenerationRequest
from core.responder import SHORT_ANSWER_TOKENS
from core.types import ChatTurn, Role
from workers.batching import BatchedGenerator
from workers.training.evaluate import score_model
from workers.training.options import TrainingOptions
from workers.training.profile_probe import Probe
from workers.training.profile_prompt import prompt_for
from workers.training.regression import regression_set

__all__ = [
    "TARGETS",
    "Answer",
    "Results",
    "answer_all",
    "claims_name",
    "measure",
    "regression_nll",
    "tone_complies",
    "verdicts",
]

TARGETS = {
    "name_recall": (">=", 0.9),
    "fact_use": (">=", 0.7),
    "name_claimed": ("<=", 0.02),
    "length": (">=", 0.8),
    "tone": (">=", 0.8),
}
_CONTRACTION = re.compile(r"\b\w+(?:'|\u2019)(?:m|re|s|ve|ll|d|t)\b", re.I)
_CASUAL = re.compile(r"\b(hey|hi|yeah|awesome|cool|sure thing|no worries|totally|gonna)\b", re.I)
_ACKNOWLEDGE = re.compile(
    r"sorry|frustrat|understand|that sounds|upset|annoying|stressful|I hear you", re.I
)


def claims_name(answer: str, name: str) -> bool:
    """Parley presents itself as ``name`` (the person's name)."""
    pattern = rf"\b(?:I am|I'm|I\u2019m|my name is|my name's|call me|this is)\s+{re.escape(name)}\b"
    return re.search(pattern, answer, re.I) is not None


def tone_complies(answer: str, tone: str) -> bool:
    """The documented marker check (module docstring)."""
    casual = bool(_CONTRACTION.search(answer) or _CASUAL.search(answer))
    if tone == "formal":
        return not casual
    return casual or "!" in answer


@dataclass(slots=True)
class Answer:
    """One probe's answer."""

    probe: Probe
    text: str
    tokens: int


@dataclass(slots=True)
class Results:
    """The figures of one model."""

    rates: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    examples: list[dict[str, str]] = field(default_factory=list)
    regression_nll: float = 0.0
    seconds: float = 0.0


def _contains(text: str, words: tuple[str, ...]) -> bool:
    low = text.lower()
    return any(w.lower() in low for w in words)


def _rate(hits: list[bool]) -> float:
    return sum(hits) / len(hits) if hits else float("nan")


def measure(answers: list[Answer]) -> Results:
    """The rates of the module docstring over ``answers``."""
    by_kind: dict[str, list[Answer]] = {}
    for a in answers:
        by_kind.setdefault(a.probe.kind, []).append(a)
    results = Results()
    rates, counts = results.rates, results.counts

    def put(key: str, hits: list[bool]) -> None:
        rates[key], counts[key] = _rate(hits), len(hits)

    put("name_recall", [_contains(a.text, a.probe.expect) for a in by_kind.get("name", [])])
    put("greeting_name", [_contains(a.text, a.probe.expect) for a in by_kind.get("greeting", [])])
    recall = [_contains(a.text, a.probe.expect) for a in by_kind.get("fact_recall", [])]
    use = [_contains(a.text, a.probe.expect) for a in by_kind.get("fact_use", [])]
    put("fact_recall", recall)
    put("fact_indirect", use)
    put("fact_use", recall + use)
    put(
        "name_claimed",
        [claims_name(a.text, a.probe.persona.name) for a in answers if a.probe.persona.name],
    )
    pairs: dict[tuple[str | None, str | None], dict[str, Answer]] = {}
    for a in by_kind.get("length", []):
        pairs.setdefault((a.probe.persona.name, a.probe.topic), {})[
            a.probe.persona.length or ""
        ] = a
    put(
        "length",
        [
            p["short"].tokens <= 0.5 * p["detailed"].tokens
            for p in pairs.values()
            if "short" in p and "detailed" in p
        ],
    )
    put(
        "tone",
        [tone_complies(a.text, a.probe.persona.tone or "") for a in by_kind.get("tone", [])],
    )
    put("upset_acknowledged", [bool(_ACKNOWLEDGE.search(a.text)) for a in by_kind.get("upset", [])])
    seen: set[str] = set()
    for a in answers:
        if a.probe.kind not in seen:
            seen.add(a.probe.kind)
            results.examples.append(
                {"kind": a.probe.kind, "message": a.probe.message, "answer": a.text}
            )
    return results


async def answer_all(
    generator: BatchedGenerator,
    settings: Settings,
    probes: list[Probe],
    max_new_tokens: int,
    *,
    canary: str | None = None,
) -> list[Answer]:
    """Every probe at once through the batching generator, prompts by Parley's builder.

    ``canary``: the prompt guard's marker, one per process as in serving.
    """
    rng = random.Random(0)

    async def one(probe: Probe) -> Answer:
        profile = probe.persona.profile(rng)
        turns = prompt_for(
            settings, generator.tokens, profile, probe.message, upset=probe.upset, canary=canary
        )
        limit = max_new_tokens
        if probe.upset or (probe.persona.length or "") == "short":
            limit = min(limit, SHORT_ANSWER_TOKENS)
        request = GenerationRequest(
            turns=tuple(ChatTurn(Role(t["role"]), t["content"]) for t in turns),
            max_new_tokens=limit,
        )
        stream = generator.generate(request)
        async for _ in stream:
            pass
        result = stream.result
        return Answer(probe, result.text, result.completion_tokens)

    return list(await asyncio.gather(*(one(p) for p in probes)))


def regression_nll(generator: BatchedGenerator) -> float:
    """Per-token NLL of the nightly regression set with the weights being served."""
    loaded = generator.loaded
    options = TrainingOptions()
    items = regression_set(options.regression_size, options.regression_seed)
    scores = score_model(
        loaded.model,
        loaded.tokenizer,
        [],
        items,
        max_length=options.max_length,
        batch_size=options.eval_batch_size,
    )
    tokens = sum(n for _, n in scores.regression)
    return -sum(lp for lp, _ in scores.regression) / tokens


def verdicts(base: Results, tuned: Results) -> dict[str, bool]:
    """Each target, met or not, for the tuned version."""
    met = {}
    for key, (how, limit) in TARGETS.items():
        value = tuned.rates[key]
        met[key] = value >= limit if how == ">=" else value <= limit
    drift = tuned.regression_nll - base.regression_nll
    met["chitchat_drift"] = drift <= TrainingOptions().max_regression_drift
    upset = tuned.rates["upset_acknowledged"]
    met["upset_acknowledged"] = upset > 0 and upset >= base.rates["upset_acknowledged"] - 0.1
    return met
