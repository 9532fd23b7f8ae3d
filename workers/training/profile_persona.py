"""The made-up people of the profile-following data set and the profiles they have."""

from __future__ import annotations

import random
from dataclasses import dataclass

from core.types import Fact, UserProfile
from workers.training.profile_pools import Pools

__all__ = ["Persona", "personas"]


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
