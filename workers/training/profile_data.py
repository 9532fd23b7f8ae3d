"""The profile-following data set: answers that use what Parley knows about the person.

Profiles (names from many languages and cultures, home towns, diets, jobs, pets, hobbies,
tone and length preferences) meet the ways people use them: asking Parley to recall them
("What is my name?", "Where do I live?"), relying on them without saying so ("Suggest a
dinner" for a vegetarian), greetings, tone and length preferences, questions about Parley
itself (it stays Parley and never takes the person's name), a frustrated person, and
ordinary chitchat from the packaged ``chitchat-dataset`` so that plain talk does not drift.

Every prompt is built by Parley's own prompt builder (:class:`core.context.ContextBuilder`
with the settings' system prompt, the canary of :class:`core.prompt_guard.PromptGuard`, a
real :class:`core.types.UserProfile` and the mood guidance of :mod:`core.responder`), so
training sees what serving sends (:mod:`.profile_prompt`). Completions come from templates
with varied phrasings (:mod:`.profile_phrasings`, filled in by :mod:`.profile_probe` for the
people of :mod:`.profile_persona`).

Names, places, jobs, pets, hobbies, diets and general questions are split into a training
pool and an evaluation pool (:mod:`.profile_train_pool`, :mod:`.profile_eval_pool`): nothing
of the evaluation pool ever appears in a training row (``tests/test_profile_data.py`` checks
it), and the chitchat used for the nightly regression set is left out too. One command
rebuilds it, seeded::

    PARLEY_MODEL_CACHE_DIR=.cache/models python -m workers.training.profile_data \\
        --out data/profile_sft --seed 0

It writes ``train.jsonl`` (TRL's conversational ``prompt``/``completion`` rows with a
``kind`` tag), ``held_out.jsonl`` (rows of the same form from evaluation personas, for the
training run's held-out loss), ``eval.jsonl`` (held-out probes: the profile, the message and
what to check; the benchmark rebuilds them with :func:`eval_probes`) and ``counts.json``.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from config.settings import Settings
from core.generator import TokenCounter
from core.types import UserProfile
from workers.training.profile_eval_pool import EVAL
from workers.training.profile_leaks import canary as _canary
from workers.training.profile_leaks import chitchat as _chitchat
from workers.training.profile_leaks import chitchat_rows, eval_terms, mentions
from workers.training.profile_length import length_rows
from workers.training.profile_persona import Persona, personas
from workers.training.profile_phrasings import PARLEY_ANSWERS, UPSET_ANSWERS, UPSET_HELP
from workers.training.profile_pools import Pools
from workers.training.profile_probe import Probe, answer_topic, examples, tone_pair
from workers.training.profile_prompt import make_builder, prompt_for
from workers.training.profile_train_pool import TRAIN

__all__ = [
    "EVAL",
    "TRAIN",
    "Persona",
    "Pools",
    "Probe",
    "build_rows",
    "eval_probes",
    "eval_terms",
    "held_out_rows",
    "main",
    "make_builder",
    "mentions",
    "personas",
    "prompt_for",
    "style_rows",
]


def build_rows(
    settings: Settings,
    tokens: TokenCounter,
    *,
    people: int,
    chitchat_share: float,
    seed: int,
) -> list[dict[str, Any]]:
    """Training rows: ``people`` training personas' examples plus chitchat (the module doc)."""
    from workers.training.regression import regression_set

    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for persona in personas(TRAIN, people, seed):
        for probe, answer in examples(persona, TRAIN, rng):
            profile = persona.profile(rng)
            prompt = prompt_for(
                settings, tokens, profile, probe.message, upset=probe.upset, canary=_canary(rng)
            )
            rows.append({"kind": probe.kind, "prompt": prompt, "completion": _assistant(answer)})
    # Ordinary talk, some with a profile in the prompt, none of the regression set.
    held = {item.key for item in regression_set(256, 0)}
    exchanges = _chitchat(held)
    wanted = int(len(rows) * chitchat_share / (1.0 - chitchat_share))
    extra = personas(TRAIN, wanted, seed + 1)
    terms = eval_terms()
    for (key, said, reply), persona in zip(rng.sample(exchanges, wanted), extra, strict=True):
        if mentions(f"{said} {reply}", terms):
            continue  # the corpus may name an evaluation town or hobby
        profile = persona.profile(rng) if rng.random() < 0.5 else UserProfile()
        prompt = prompt_for(settings, tokens, profile, said, canary=_canary(rng))
        rows.append(
            {"kind": "chitchat", "key": key, "prompt": prompt, "completion": _assistant(reply)}
        )
    rng.shuffle(rows)
    return rows


def style_rows(
    settings: Settings, tokens: TokenCounter, *, people: int, chitchat_share: float, seed: int
) -> list[dict[str, Any]]:
    """The second stage's rows (``--stage style``): contrasting pairs of the same question
    for ``length short``/``detailed`` and ``tone formal``/``casual``, questions about Parley,
    a frustrated person and indirect use of facts, with half of the recall and greeting rows
    and a smaller share of chitchat (only training pools, like :func:`build_rows`)."""
    from dataclasses import replace

    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []

    def add(probe: Probe, answer: str) -> None:
        profile = probe.persona.profile(rng)
        prompt = prompt_for(
            settings, tokens, profile, probe.message, upset=probe.upset, canary=_canary(rng)
        )
        rows.append({"kind": probe.kind, "prompt": prompt, "completion": _assistant(answer)})

    for persona in personas(TRAIN, people, seed):
        for probe, answer in examples(persona, TRAIN, rng):
            if probe.kind in ("fact_use", "parley", "upset") or rng.random() < 0.5:
                add(probe, answer)
        topic = rng.choice(TRAIN.topics)
        for length in ("short", "detailed"):
            who = replace(persona, length=length, tone=None)
            add(
                Probe("length", who, topic.question, topic=topic.question),
                answer_topic(topic, who, rng),
            )
        for probe, answer in tone_pair(persona, TRAIN.topics, rng):
            add(probe, answer)
        if rng.random() < 0.5:
            add(
                Probe("parley", persona, rng.choice(TRAIN.parley_questions)),
                rng.choice([a for a in PARLEY_ANSWERS if persona.name or "{name}" not in a]).format(
                    me="Parley", name=persona.name or ""
                ),
            )
        if rng.random() < 0.3:
            add(
                Probe("upset", persona, rng.choice(TRAIN.upset), upset=True),
                rng.choice(UPSET_ANSWERS).format(help=rng.choice(UPSET_HELP)),
            )
    rows += chitchat_rows(settings, tokens, rng, len(rows), chitchat_share)
    rng.shuffle(rows)
    return rows


def held_out_rows(
    settings: Settings, tokens: TokenCounter, *, people: int, seed: int
) -> list[dict[str, Any]]:
    """Rows like :func:`build_rows`' from evaluation personas only: the training run's
    held-out loss (``correction_loss`` in its report), never trained on."""
    rng = random.Random(seed + 13)
    rows: list[dict[str, Any]] = []
    for persona in personas(EVAL, people, seed + 13):
        for probe, answer in examples(persona, EVAL, rng):
            profile = persona.profile(rng)
            prompt = prompt_for(
                settings, tokens, profile, probe.message, upset=probe.upset, canary=_canary(rng)
            )
            rows.append({"kind": probe.kind, "prompt": prompt, "completion": _assistant(answer)})
    return rows


def eval_probes(count: int, seed: int) -> list[Probe]:
    """Held-out probes from ``count`` evaluation personas (every kind, no training pool).

    Tone and length probes come in pairs: the same question, once per preference.
    """
    rng = random.Random(seed + 7)
    probes: list[Probe] = []
    for i, persona in enumerate(personas(EVAL, count, seed + 7)):
        named = persona if persona.name else Persona(rng.choice(EVAL.names), place=persona.place)
        probes.extend(
            p
            for p, _ in examples(named, EVAL, rng)
            if p.kind not in ("tone", "length", "general", "upset")
        )
        topic = EVAL.topics[i % len(EVAL.topics)]
        for tone in ("formal", "casual"):
            who = Persona(named.name, tone=tone)
            probes.append(Probe("tone", who, topic.question, topic=topic.question))
        for length in ("short", "detailed"):
            who = Persona(named.name, length=length)
            probes.append(Probe("length", who, topic.question, topic=topic.question))
        if i % 2 == 0:
            probes.append(Probe("upset", named, EVAL.upset[i % len(EVAL.upset)], upset=True))
    return probes


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def _probe_json(probe: Probe) -> dict[str, Any]:
    p = probe.persona
    return {
        "kind": probe.kind,
        "message": probe.message,
        "expect": list(probe.expect),
        "topic": probe.topic,
        "upset": probe.upset,
        "persona": {
            "name": p.name,
            "place": p.place,
            "job": p.job,
            "pet": list(p.pet) if p.pet else None,
            "hobby": p.hobby[0] if p.hobby else None,
            "diet": p.diet[0] if p.diet else None,
            "tone": p.tone,
            "length": p.length,
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Write ``train.jsonl``, ``eval.jsonl`` and ``counts.json`` into ``--out``."""
    parser = argparse.ArgumentParser(prog="python -m workers.training.profile_data")
    parser.add_argument("--out", type=Path, default=Path("data/profile_sft"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--people", type=int, default=300, help="training personas")
    parser.add_argument("--chitchat-share", type=float, default=0.2)
    parser.add_argument("--eval-people", type=int, default=40, help="held-out personas")
    parser.add_argument(
        "--stage",
        choices=("base", "style", "length"),
        default="base",
        help="base: the first training's mix; style: the second's (see style_rows); "
        "length: the third's (see workers.training.profile_length)",
    )
    args = parser.parse_args(argv)

    from workers.model import load_tokenizer

    settings = Settings()
    tokens = load_tokenizer(settings)
    make = {"base": build_rows, "style": style_rows, "length": length_rows}[args.stage]
    rows = make(
        settings, tokens, people=args.people, chitchat_share=args.chitchat_share, seed=args.seed
    )
    probes = eval_probes(args.eval_people, args.seed)
    held_out = held_out_rows(settings, tokens, people=args.eval_people, seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "held_out.jsonl").open("w", encoding="utf-8") as out:
        for row in held_out:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    with (args.out / "train.jsonl").open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    with (args.out / "eval.jsonl").open("w", encoding="utf-8") as out:
        for probe in probes:
            out.write(json.dumps(_probe_json(probe), ensure_ascii=False) + "\n")
    counts = {
        "seed": args.seed,
        "train_rows": len(rows),
        "train_kinds": dict(Counter(r["kind"] for r in rows)),
        "held_out_rows": len(held_out),
        "eval_probes": len(probes),
        "eval_kinds": dict(Counter(p.kind for p in probes)),
    }
    (args.out / "counts.json").write_text(json.dumps(counts, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
