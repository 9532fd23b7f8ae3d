"""Learning facts people share about themselves ("I live in Lyon", "I'm vegetarian").

Extraction is a small set of patterns over first-person statements, each with a
confidence: predictable, instant and explainable, where a 135M-parameter model asked to
extract facts invents them. Questions and negated or hypothetical sentences are skipped.
Every learned fact keeps the id of the turn it came from; explicit facts set with
``/profile fact`` always win, and ``/profile learning off`` stops learning and hides what
was learned.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace

from core.types import Fact, UserProfile

__all__ = ["MAX_LEARNED_FACTS", "extract_facts", "merge_facts"]

MAX_LEARNED_FACTS = 20

_NAME = r"([A-Z][\w'-]{1,30}(?: [A-Z][\w'-]{1,30})?)"
_PLACE = r"([A-Z][\w.'-]*(?:[ -](?:[A-Z][\w.'-]*|de|du|del|am|on|upon))*)"
_THING = r"([^.!?,;:()\n]{2,40}?)"
_END = r"(?=[.!?,;:\n]|$| and | but | because )"
_NOT_ROLES = {"bit", "little", "lot", "big", "fan", "huge", "bot", "person", "human", "user", "few"}

_PATTERNS: tuple[tuple[re.Pattern[str], str, float], ...] = (
    (re.compile(rf"\bmy name is {_NAME}"), "The user's name is {0}", 0.9),
    (re.compile(rf"\b(?:please )?call me {_NAME}"), "The user likes to be called {0}", 0.8),
    # Names of places and employers are capitalised: the lead-in alone ignores case.
    (re.compile(rf"\b(?i:i live in) {_PLACE}"), "The user lives in {0}", 0.8),
    (re.compile(rf"\b(?i:i(?: am|'m) from) {_PLACE}"), "The user is from {0}", 0.8),
    (re.compile(rf"\b(?i:i work (?:at|for)) {_PLACE}"), "The user works at {0}", 0.8),
    (re.compile(rf"\bi work as an? {_THING}{_END}", re.I), "The user works as a {0}", 0.8),
    (re.compile(rf"\bi(?: am|'m) an? {_THING}{_END}", re.I), "The user is a {0}", 0.6),
    (
        re.compile(r"\bi(?: am|'m) (vegetarian|vegan|left-handed|colou?r-?blind)\b", re.I),
        "The user is {0}",
        0.8,
    ),
    (
        re.compile(rf"\bi(?: am|'m) allergic to {_THING}{_END}", re.I),
        "The user is allergic to {0}",
        0.9,
    ),
    (
        re.compile(rf"\bi (?:really )?(?:like|love|enjoy) {_THING}{_END}", re.I),
        "The user likes {0}",
        0.7,
    ),
    (
        re.compile(
            rf"\bi (?:really )?(?:hate|dislike|don't like|do not like) {_THING}{_END}", re.I
        ),
        "The user dislikes {0}",
        0.7,
    ),
    (
        re.compile(rf"\bmy favou?rite {_THING} is {_THING}{_END}", re.I),
        "The user's favourite {0} is {1}",
        0.8,
    ),
)
_SKIP = re.compile(r"\b(if|would|wish|maybe|not sure|pretend|imagine|suppose)\b", re.I)
_SENTENCES = re.compile(r"[^.!?\n]+[.!?]?")


def extract_facts(text: str, source_message_id: int | None = None) -> list[Fact]:
    """Facts a person states about themselves in ``text``, each with its confidence."""
    found: dict[str, Fact] = {}
    for sentence in _SENTENCES.findall(text):
        sentence = sentence.strip()
        if not sentence or sentence.endswith("?") or _SKIP.search(sentence):
            continue
        for pattern, template, confidence in _PATTERNS:
            for match in pattern.finditer(sentence):
                parts = [g.strip().rstrip(".'") for g in match.groups()]
                if (
                    template.startswith("The user is a {0}")
                    and parts[0].split()[0].lower() in _NOT_ROLES
                ):
                    continue
                fact = template.format(*parts)
                found.setdefault(
                    fact.lower(), Fact(fact, confidence, source_message_id, learned=True)
                )
    return list(found.values())


def merge_facts(profile: UserProfile, learned: Iterable[Fact]) -> UserProfile:
    """The profile with newly learned facts added; explicit facts and known texts stay as they are.

    At most :data:`MAX_LEARNED_FACTS` learned facts are kept: the least confident, then the
    oldest, make way for new ones.
    """
    known = {f.text.lower(): f for f in profile.facts}
    changed = False
    for fact in learned:
        existing = known.get(fact.text.lower())
        if existing is None:
            known[fact.text.lower()] = fact
            changed = True
        elif existing.learned and fact.confidence > existing.confidence:
            known[fact.text.lower()] = replace(existing, confidence=fact.confidence)
            changed = True
    if not changed:
        return profile
    facts = list(known.values())
    learned_facts = [f for f in facts if f.learned]
    if len(learned_facts) > MAX_LEARNED_FACTS:
        # Newest first, then a stable sort by confidence: among equals the newest survive.
        ranked = sorted(reversed(learned_facts), key=lambda f: f.confidence, reverse=True)
        keep = ranked[:MAX_LEARNED_FACTS]
        facts = [f for f in facts if not f.learned or f in keep]
    return replace(profile, facts=tuple(facts))
