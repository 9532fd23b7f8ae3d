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
training sees what serving sends. Completions come from templates with varied phrasings.

Names, places, jobs, pets, hobbies, diets and general questions are split into a training
pool and an evaluation pool: nothing of the evaluation pool ever appears in a training row
(``tests/test_profile_data.py`` checks it), and the chitchat used for the nightly
regression set is left out too. One command rebuilds it, seeded::

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
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.settings import Settings
from core.context import ContextBuilder
from core.generator import TokenCounter
from core.prompt_guard import PromptGuard
from core.responder import UPSET_GUIDANCE
from core.types import Fact, UserProfile
from workers.training.profile_pools import EVAL, TRAIN, Pools, Topic

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


@dataclass(frozen=True, slots=True)
class Persona:
    """One made-up person: their profile's parts."""

    name: str | None
    place: str | None = None
    job: str | None = None
    pet: tuple[str, str] | None = None
    hobby: tuple[str, str, str] | None = None
    diet: tuple[str, tuple[str, ...], str] | None = None
    tone: str | None = None
    length: str | None = None

    def profile(self, rng: random.Random) -> UserProfile:
        """The profile as ``/profile`` and fact learning would store it (phrasing varies)."""
        facts: list[Fact] = []
        if self.place:
            facts.append(_fact(rng, f"I live in {self.place}", f"The user lives in {self.place}"))
        if self.job:
            facts.append(_fact(rng, f"I work as {self.job}", f"The user works as {self.job}"))
        if self.pet:
            kind, pet = self.pet
            facts.append(
                _fact(rng, f"I have a {kind} called {pet}", f"The user has a {kind} named {pet}")
            )
        if self.hobby:
            facts.append(_fact(rng, f"I love {self.hobby[0]}", f"The user likes {self.hobby[0]}"))
        if self.diet:
            facts.append(_fact(rng, f"I am {self.diet[0]}", f"The user is {self.diet[0]}"))
        rng.shuffle(facts)
        preferences = {}
        if self.tone:
            preferences["tone"] = self.tone
        if self.length:
            preferences["length"] = self.length
        return UserProfile(display_name=self.name, preferences=preferences, facts=tuple(facts))


def _fact(rng: random.Random, said: str, learned: str) -> Fact:
    """A fact set with ``/profile fact`` (first person) or learned from a message."""
    if rng.random() < 0.5:
        return Fact(said)
    return Fact(learned, confidence=0.8, learned=True)


def personas(pools: Pools, count: int, seed: int) -> list[Persona]:
    """``count`` people drawn from ``pools``: each has some facts, a few have none."""
    rng = random.Random(seed)
    people = []
    for _ in range(count):
        people.append(
            Persona(
                name=rng.choice(pools.names) if rng.random() < 0.92 else None,
                place=rng.choice(pools.places) if rng.random() < 0.6 else None,
                job=rng.choice(pools.jobs) if rng.random() < 0.45 else None,
                pet=rng.choice(pools.pets) if rng.random() < 0.35 else None,
                hobby=rng.choice(pools.hobbies) if rng.random() < 0.5 else None,
                diet=rng.choice(pools.diets) if rng.random() < 0.35 else None,
                tone=rng.choice(("formal", "casual")) if rng.random() < 0.4 else None,
                length=rng.choice(("short", "detailed")) if rng.random() < 0.4 else None,
            )
        )
    return people


# ---------------------------------------------------------------------------------------
# Completions, by kind. Formal answers use no contractions; casual ones open casually.

_FORMAL_OPENERS = ("Certainly.", "Of course.", "Certainly, {name}.", "Good question.")
_CASUAL_OPENERS = ("Hey {name}!", "Sure thing!", "Oh, easy one!", "Hey!", "Sure!")
_CASUAL_CLOSERS = ("Hope that helps!", "You've got this!", "Have fun with it!", "")


def _styled(text: str, persona: Persona, rng: random.Random) -> str:
    """``text`` in the person's tone: a formal or a casual opener (and closer)."""
    name = persona.name or ""

    def pick(options: Sequence[str]) -> str:
        usable = [o for o in options if name or "{name}" not in o]
        return rng.choice(usable).format(name=name)

    if persona.tone == "formal":
        return f"{pick(_FORMAL_OPENERS)} {text}"
    if persona.tone == "casual":
        closer = rng.choice(_CASUAL_CLOSERS)
        return f"{pick(_CASUAL_OPENERS)} {text}" + (f" {closer}" if closer else "")
    return text


def _answer_topic(topic: Topic, persona: Persona, rng: random.Random) -> str:
    """A general answer whose length follows the preference (short: the core only)."""
    if persona.length == "short":
        body = topic.core
    elif persona.length == "detailed":
        details = list(topic.details)
        body = f"{topic.core} Here are some more details. " + " ".join(details)
        body += " " + rng.choice(
            (
                "Take it one step at a time and adjust as you go.",
                "With a little practice it soon becomes easy.",
                "Small, steady changes work better than big ones.",
            )
        )
    else:
        body = f"{topic.core} {rng.choice(topic.details)}"
    return _styled(body, persona, rng)


_NAME_QUESTIONS = (
    "What is my name?",
    "What's my name?",
    "Do you know my name?",
    "Do you remember my name?",
    "Who am I?",
    "Can you tell me my name?",
    "what's my name",
    "Say my name.",
)
_NAME_ANSWERS = (
    "Your name is {name}.",
    "You are {name}.",
    "Your name is {name}. How can I help you?",
    "Of course: you are {name}.",
    "You told me your name is {name}.",
    "You're {name}!",
)
_NO_NAME_ANSWERS = (
    "I don't know your name yet. You can tell me with /profile name followed by your name.",
    "You haven't told me your name yet. Set it with /profile name and I'll remember it.",
)
_GREETINGS = ("Hi!", "Hello", "Hey there", "Good morning!", "hi", "Hello Parley!", "Hey!")
_GREETING_ANSWERS = (
    "Hi {name}! How can I help you today?",
    "Hello {name}! What can I do for you?",
    "Hey {name}, good to see you! What's on your mind?",
    "Good to hear from you, {name}. How can I help?",
)
_PLACE_QUESTIONS = (
    "Where do I live?",
    "Which city do I live in?",
    "Do you know where I live?",
    "Where's my home town?",
)
_PLACE_ANSWERS = (
    "You live in {place}.",
    "You told me you live in {place}.",
    "You live in {place}. How can I help?",
)
_JOB_QUESTIONS = ("What do I do for a living?", "What is my job?", "Do you know what I work as?")
_JOB_ANSWERS = ("You work as {job}.", "You are {job}.", "You told me you work as {job}.")
_PET_QUESTIONS = ("What is my pet's name?", "What's my pet called?", "Do you remember my pet?")
_PET_ANSWERS = (
    "Your {kind} is called {pet}.",
    "You have a {kind} named {pet}.",
    "Your pet is {pet}, your {kind}.",
)
_HOBBY_QUESTIONS = (
    "What should I do this weekend?",
    "Any ideas for my free time?",
    "I'm bored, what could I do?",
    "What should I do on Saturday?",
)
_HOBBY_ANSWERS = (
    "Since you love {hobby}, how about {activity} this weekend? You could invite a friend along.",
    "You enjoy {hobby}, so why not spend some time {activity}? It is a great way to recharge.",
    "How about {activity}? You like {hobby}, and a free day is the perfect time for it.",
)
_DINNER_QUESTIONS = (
    "Suggest a dinner for tonight.",
    "What should I cook for dinner?",
    "Any ideas for dinner?",
    "What should I eat tonight?",
)
_DINNER_ANSWERS = (
    "Since you are {diet}, how about {dish}? It is simple and filling.",
    "As you are {diet}, {dish} would be a good choice tonight.",
    "Here is a {diet} idea: {dish}. It takes about thirty minutes.",
)
_PLACE_TRIP_QUESTIONS = (
    "Any ideas for a day out near me?",
    "What could I do nearby this afternoon?",
)
_PLACE_TRIP_ANSWERS = (
    "In {place}, you could visit a museum or take a walk through the old town.",
    "Around {place}, a walk in a park or a visit to a local market would be lovely.",
)
_PARLEY_ANSWERS = (
    "I'm {me}, an assistant in this chat. I can answer questions and help with ideas.",
    "My name is {me}. I'm a friendly assistant here to help you.",
    "I'm {me}, your assistant. What can I help you with, {name}?",
    "I'm {me}, not a person but an AI assistant. How can I help?",
)
_UPSET_ANSWERS = (
    "I'm sorry, that sounds really frustrating. {help}",
    "That sounds stressful, and I understand why you are upset. {help}",
    "I'm sorry you're dealing with this. {help}",
)
_UPSET_HELP = (
    "Let's take it one step at a time: what happened just before it went wrong?",
    "Take a short break if you can, then tell me more and we can sort it out together.",
    "Tell me a bit more and I'll help you find a way forward.",
)


@dataclass(frozen=True, slots=True)
class Probe:
    """One message to a person, with what a good answer must show (evaluation)."""

    kind: str
    persona: Persona
    message: str
    expect: tuple[str, ...] = ()
    """Words one of which must appear (case-insensitive); empty when the kind checks otherwise."""
    topic: str | None = None
    upset: bool = False


def _examples(persona: Persona, pools: Pools, rng: random.Random) -> list[tuple[Probe, str]]:
    """The probes this person fits, each with a templated answer."""
    found: list[tuple[Probe, str]] = []
    name = persona.name
    if name:
        found.append(
            (
                Probe("name", persona, rng.choice(_NAME_QUESTIONS), (name,)),
                _styled(rng.choice(_NAME_ANSWERS).format(name=name), persona, rng)
                if persona.tone == "formal"
                else rng.choice(_NAME_ANSWERS).format(name=name),
            )
        )
        found.append(
            (
                Probe("greeting", persona, rng.choice(_GREETINGS), (name,)),
                rng.choice(_GREETING_ANSWERS).format(name=name),
            )
        )
    else:
        found.append(
            (Probe("no_name", persona, rng.choice(_NAME_QUESTIONS)), rng.choice(_NO_NAME_ANSWERS))
        )
    if persona.place:
        place = persona.place
        found.append(
            (
                Probe("fact_recall", persona, rng.choice(_PLACE_QUESTIONS), (place,)),
                rng.choice(_PLACE_ANSWERS).format(place=place),
            )
        )
        if rng.random() < 0.5:
            found.append(
                (
                    Probe("fact_use", persona, rng.choice(_PLACE_TRIP_QUESTIONS), (place,)),
                    rng.choice(_PLACE_TRIP_ANSWERS).format(place=place),
                )
            )
    if persona.job:
        found.append(
            (
                Probe(
                    "fact_recall",
                    persona,
                    rng.choice(_JOB_QUESTIONS),
                    (persona.job.split(" ", 1)[1],),
                ),
                rng.choice(_JOB_ANSWERS).format(job=persona.job),
            )
        )
    if persona.pet:
        kind, pet = persona.pet
        found.append(
            (
                Probe("fact_recall", persona, rng.choice(_PET_QUESTIONS), (pet,)),
                rng.choice(_PET_ANSWERS).format(kind=kind, pet=pet),
            )
        )
    if persona.hobby:
        hobby, activity, word = persona.hobby
        found.append(
            (
                Probe("fact_use", persona, rng.choice(_HOBBY_QUESTIONS), (word,)),
                rng.choice(_HOBBY_ANSWERS).format(hobby=hobby, activity=activity),
            )
        )
    if persona.diet:
        diet, dishes, word = persona.diet
        found.append(
            (
                Probe("fact_use", persona, rng.choice(_DINNER_QUESTIONS), (word,)),
                rng.choice(_DINNER_ANSWERS).format(diet=diet, dish=rng.choice(dishes)),
            )
        )
    if rng.random() < 0.6:
        found.append(
            (
                Probe("parley", persona, rng.choice(pools.parley_questions), ("Parley",)),
                rng.choice([a for a in _PARLEY_ANSWERS if name or "{name}" not in a]).format(
                    me="Parley", name=name or ""
                ),
            )
        )
    kind = "tone" if persona.tone else "length" if persona.length else "general"
    for topic in rng.sample(pools.topics, 2 if kind != "general" else 1):
        found.append(
            (
                Probe(kind, persona, topic.question, topic=topic.question),
                _answer_topic(topic, persona, rng),
            )
        )
    if rng.random() < 0.25:
        found.append(
            (
                Probe("upset", persona, rng.choice(pools.upset), upset=True),
                rng.choice(_UPSET_ANSWERS).format(help=rng.choice(_UPSET_HELP)),
            )
        )
    return found


# ---------------------------------------------------------------------------------------
# Prompts: Parley's own builder.


def make_builder(settings: Settings, tokens: TokenCounter, canary: str | None) -> ContextBuilder:
    """The prompt builder as the conversation service makes it from ``settings``.

    ``canary``: the guard's marker (random per process in serving; varied per row here),
    or ``None`` when the settings turn the canary off.
    """
    instructions = (
        PromptGuard(canary).instructions(settings.conversation.system_prompt)
        if settings.safety.canary and canary is not None
        else settings.conversation.system_prompt
    )
    return ContextBuilder(
        tokens,
        instructions,
        settings.prompt_budget,
        settings.conversation.assistant_name,
        profile_budget=settings.conversation.profile_tokens,
    )


def _canary(rng: random.Random) -> str:
    return "PX-" + "".join(rng.choice("0123456789ABCDEF") for _ in range(12))


def prompt_for(
    settings: Settings,
    tokens: TokenCounter,
    profile: UserProfile,
    message: str,
    *,
    upset: bool = False,
    canary: str | None = None,
) -> list[dict[str, str]]:
    """The chat turns Parley would send for ``message`` from a person with ``profile``."""
    builder = make_builder(settings, tokens, canary)
    report = builder.build(
        history=(),
        text=message,
        speaker=None,
        profile=profile,
        guidance=(UPSET_GUIDANCE,) if upset else (),
    )
    return [turn.as_dict() for turn in report.turns]


def _chitchat(exclude: set[str]) -> list[tuple[str, str, str]]:
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
        for probe, answer in _examples(persona, TRAIN, rng):
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

    from workers.training.regression import regression_set

    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []

    def add(probe: Probe, answer: str) -> None:
        profile = probe.persona.profile(rng)
        prompt = prompt_for(
            settings, tokens, profile, probe.message, upset=probe.upset, canary=_canary(rng)
        )
        rows.append({"kind": probe.kind, "prompt": prompt, "completion": _assistant(answer)})

    for persona in personas(TRAIN, people, seed):
        for probe, answer in _examples(persona, TRAIN, rng):
            if probe.kind in ("fact_use", "parley", "upset") or rng.random() < 0.5:
                add(probe, answer)
        topic = rng.choice(TRAIN.topics)
        for length in ("short", "detailed"):
            who = replace(persona, length=length, tone=None)
            add(
                Probe("length", who, topic.question, topic=topic.question),
                _answer_topic(topic, who, rng),
            )
        topic = rng.choice(TRAIN.topics)
        for tone in ("formal", "casual"):
            who = replace(persona, tone=tone, length=None)
            add(
                Probe("tone", who, topic.question, topic=topic.question),
                _answer_topic(topic, who, rng),
            )
        if rng.random() < 0.5:
            add(
                Probe("parley", persona, rng.choice(TRAIN.parley_questions)),
                rng.choice(
                    [a for a in _PARLEY_ANSWERS if persona.name or "{name}" not in a]
                ).format(me="Parley", name=persona.name or ""),
            )
        if rng.random() < 0.3:
            add(
                Probe("upset", persona, rng.choice(TRAIN.upset), upset=True),
                rng.choice(_UPSET_ANSWERS).format(help=rng.choice(_UPSET_HELP)),
            )
    held = {item.key for item in regression_set(256, 0)}
    exchanges = _chitchat(held)
    wanted = int(len(rows) * chitchat_share / (1.0 - chitchat_share))
    terms = eval_terms()
    for key, said, reply in rng.sample(exchanges, wanted):
        if mentions(f"{said} {reply}", terms):
            continue
        prompt = prompt_for(settings, tokens, UserProfile(), said, canary=_canary(rng))
        rows.append(
            {"kind": "chitchat", "key": key, "prompt": prompt, "completion": _assistant(reply)}
        )
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
        for probe, answer in _examples(persona, EVAL, rng):
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
            for p, _ in _examples(named, EVAL, rng)
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
        choices=("base", "style"),
        default="base",
        help="base: the first training's mix; style: the second's (see style_rows)",
    )
    args = parser.parse_args(argv)

    from workers.model import load_tokenizer

    settings = Settings()
    tokens = load_tokenizer(settings)
    make = build_rows if args.stage == "base" else style_rows
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
