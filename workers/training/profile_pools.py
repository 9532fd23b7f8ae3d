"""The pools profiles and questions are drawn from: one for training, one for evaluation.

This module holds their shape; the training pool is
:data:`workers.training.profile_train_pool.TRAIN`, the evaluation pool
:data:`workers.training.profile_eval_pool.EVAL`. Nothing of the evaluation pool is ever
trained on: the names, places, jobs, pets, hobbies, diets, general questions, questions about
Parley and frustrated messages of the two are disjoint (``tests/test_profile_data.py`` checks
it).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Pools", "Topic"]


@dataclass(frozen=True, slots=True)
class Topic:
    """A general question with a core answer and the details a thorough answer adds."""

    question: str
    core: str
    details: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Pools:
    """One side of the split: what profiles and questions may be made of."""

    names: tuple[str, ...]
    places: tuple[str, ...]
    jobs: tuple[str, ...]
    pets: tuple[tuple[str, str], ...]
    """(kind, name)"""
    hobbies: tuple[tuple[str, str, str], ...]
    """(what the fact says, the activity as an -ing phrase, the word an answer must contain)"""
    diets: tuple[tuple[str, tuple[str, ...], str], ...]
    """(the diet as a fact says it, dinner ideas that fit, the word an answer must contain)"""
    topics: tuple[Topic, ...]
    parley_questions: tuple[str, ...]
    upset: tuple[str, ...]
