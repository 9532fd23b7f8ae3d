"""Probes: the messages a made-up person sends, what a good answer shows, templated answers."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from workers.training.profile_persona import Persona
from workers.training.profile_phrasings import (
    CASUAL_CLOSERS,
    CASUAL_OPENERS,
    DINNER_ANSWERS,
    DINNER_QUESTIONS,
    FORMAL_OPENERS,
    GREETING_ANSWERS,
    GREETINGS,
    HOBBY_ANSWERS,
    HOBBY_QUESTIONS,
    JOB_ANSWERS,
    JOB_QUESTIONS,
    NAME_ANSWERS,
    NAME_QUESTIONS,
    NO_NAME_ANSWERS,
    PARLEY_ANSWERS,
    PET_ANSWERS,
    PET_QUESTIONS,
    PLACE_ANSWERS,
    PLACE_QUESTIONS,
    PLACE_TRIP_ANSWERS,
    PLACE_TRIP_QUESTIONS,
    UPSET_ANSWERS,
    UPSET_HELP,
)
from workers.training.profile_pools import Pools, Topic

__all__ = ["Probe", "answer_topic", "examples", "tone_pair"]


def _styled(text: str, persona: Persona, rng: random.Random) -> str:
    """``text`` in the person's tone: a formal or a casual opener (and closer)."""
    name = persona.name or ""

    def pick(options: Sequence[str]) -> str:
        usable = [o for o in options if name or "{name}" not in o]
        return rng.choice(usable).format(name=name)

    if persona.tone == "formal":
        return f"{pick(FORMAL_OPENERS)} {text}"
    if persona.tone == "casual":
        closer = rng.choice(CASUAL_CLOSERS)
        return f"{pick(CASUAL_OPENERS)} {text}" + (f" {closer}" if closer else "")
    return text


def answer_topic(topic: Topic, persona: Persona, rng: random.Random) -> str:
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


def examples(persona: Persona, pools: Pools, rng: random.Random) -> list[tuple[Probe, str]]:
    """The probes this person fits, each with a templated answer."""
    found: list[tuple[Probe, str]] = []
    name = persona.name
    if name:
        found.append(
            (
                Probe("name", persona, rng.choice(NAME_QUESTIONS), (name,)),
                _styled(rng.choice(NAME_ANSWERS).format(name=name), persona, rng)
                if persona.tone == "formal"
                else rng.choice(NAME_ANSWERS).format(name=name),
            )
        )
        found.append(
            (
                Probe("greeting", persona, rng.choice(GREETINGS), (name,)),
                rng.choice(GREETING_ANSWERS).format(name=name),
            )
        )
    else:
        found.append(
            (Probe("no_name", persona, rng.choice(NAME_QUESTIONS)), rng.choice(NO_NAME_ANSWERS))
        )
    if persona.place:
        place = persona.place
        found.append(
            (
                Probe("fact_recall", persona, rng.choice(PLACE_QUESTIONS), (place,)),
                rng.choice(PLACE_ANSWERS).format(place=place),
            )
        )
        if rng.random() < 0.5:
            found.append(
                (
                    Probe("fact_use", persona, rng.choice(PLACE_TRIP_QUESTIONS), (place,)),
                    rng.choice(PLACE_TRIP_ANSWERS).format(place=place),
                )
            )
    if persona.job:
        found.append(
            (
                Probe(
                    "fact_recall",
                    persona,
                    rng.choice(JOB_QUESTIONS),
                    (persona.job.split(" ", 1)[1],),
                ),
                rng.choice(JOB_ANSWERS).format(job=persona.job),
            )
        )
    if persona.pet:
        kind, pet = persona.pet
        found.append(
            (
                Probe("fact_recall", persona, rng.choice(PET_QUESTIONS), (pet,)),
                rng.choice(PET_ANSWERS).format(kind=kind, pet=pet),
            )
        )
    if persona.hobby:
        hobby, activity, word = persona.hobby
        found.append(
            (
                Probe("fact_use", persona, rng.choice(HOBBY_QUESTIONS), (word,)),
                rng.choice(HOBBY_ANSWERS).format(hobby=hobby, activity=activity),
            )
        )
    if persona.diet:
        diet, dishes, word = persona.diet
        found.append(
            (
                Probe("fact_use", persona, rng.choice(DINNER_QUESTIONS), (word,)),
                rng.choice(DINNER_ANSWERS).format(diet=diet, dish=rng.choice(dishes)),
            )
        )
    if rng.random() < 0.6:
        found.append(
            (
                Probe("parley", persona, rng.choice(pools.parley_questions), ("Parley",)),
                rng.choice([a for a in PARLEY_ANSWERS if name or "{name}" not in a]).format(
                    me="Parley", name=name or ""
                ),
            )
        )
    kind = "tone" if persona.tone else "length" if persona.length else "general"
    for topic in rng.sample(pools.topics, 2 if kind != "general" else 1):
        found.append(
            (
                Probe(kind, persona, topic.question, topic=topic.question),
                answer_topic(topic, persona, rng),
            )
        )
    if rng.random() < 0.25:
        found.append(
            (
                Probe("upset", persona, rng.choice(pools.upset), upset=True),
                rng.choice(UPSET_ANSWERS).format(help=rng.choice(UPSET_HELP)),
            )
        )
    return found


def tone_pair(
    persona: Persona, topics: Sequence[Topic], rng: random.Random
) -> Iterator[tuple[Probe, str]]:
    """One of ``topics`` asked by ``persona`` once formal, once casual, each with its answer
    (lazily: the caller's use of ``rng`` between the two keeps a seeded data set the same)."""
    topic = rng.choice(topics)
    for tone in ("formal", "casual"):
        who = replace(persona, tone=tone, length=None)
        yield (
            Probe("tone", who, topic.question, topic=topic.question),
            answer_topic(topic, who, rng),
        )
