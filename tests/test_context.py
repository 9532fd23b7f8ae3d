"""Prompts are built within the budget: instructions and message always, then what fits."""

from __future__ import annotations

import pytest

from core.context import ContextBuilder, MessageTooLong
from core.generator import WordTokenCounter
from core.types import Fact, Role, StoredMessage, UserProfile, UserRef

COUNTER = WordTokenCounter()
ADA = UserRef("test", "u1", "Ada")


def turns_of(n: int, words: int = 5) -> list[StoredMessage]:
    return [
        StoredMessage(
            id=i + 1,
            role=Role.USER if i % 2 == 0 else Role.ASSISTANT,
            text=" ".join(f"w{i}" for _ in range(words)),
            user=ADA if i % 2 == 0 else None,
        )
        for i in range(n)
    ]


def build(
    budget: int, history: list[StoredMessage], profile: UserProfile | None = None, **kw: object
):
    builder = ContextBuilder(COUNTER, "Be brief.", budget)
    return builder.build(
        history=history, text="what now", speaker=ADA, profile=profile or UserProfile(), **kw
    )  # type: ignore[arg-type]


def test_everything_fits_in_a_large_budget() -> None:
    report = build(1000, turns_of(6))
    assert [t.role for t in report.turns] == [
        Role.SYSTEM,
        *([Role.USER, Role.ASSISTANT] * 3),
        Role.USER,
    ]
    assert report.dropped_turns == 0
    assert report.prompt_tokens == COUNTER.count_chat(report.turns, add_generation_prompt=True)


@pytest.mark.parametrize("budget", range(12, 80, 3))
def test_budget_is_never_exceeded_and_newest_turns_win(budget: int) -> None:
    history = turns_of(10)
    report = build(budget, history)
    assert report.prompt_tokens <= budget
    kept = [t.content for t in report.turns[1:-1]]
    # What was kept is a suffix of the history: the newest turns, in order.
    assert kept == [m.text for m in history[len(history) - len(kept) :]]
    assert report.dropped_turns == len(history) - len(kept)
    # One more turn would not have fitted.
    if report.dropped_turns:
        per_turn = WordTokenCounter.PER_TURN + 5
        assert report.prompt_tokens + per_turn > budget


def test_message_too_long_for_the_budget_is_refused() -> None:
    builder = ContextBuilder(COUNTER, "Be brief.", 10)
    with pytest.raises(MessageTooLong, match="too long"):
        builder.build(history=[], text="word " * 50, speaker=ADA, profile=UserProfile())


def test_profile_lines_enter_the_system_prompt_while_they_fit() -> None:
    profile = UserProfile(
        display_name="Ada", preferences={"length": "short"}, facts=(Fact("Likes tea"),)
    )
    report = build(1000, [], profile)
    system = report.turns[0].content
    assert "The user's name is Ada." in system
    assert "Keep your answers short" in system
    assert system.endswith("You are Parley, not the user.")
    assert "Likes tea." in system
    assert [s.label for s in report.segments if s.kind == "profile"] == [
        "name",
        "preference length",
        "fact 1",
    ]
    tight = build(
        COUNTER.count_chat(report.turns[:1], add_generation_prompt=False) + 6, [], profile
    )
    assert tight.prompt_tokens <= tight.budget_tokens
    assert any(not s.included for s in tight.segments if s.kind == "profile")


def test_group_turns_carry_their_speaker() -> None:
    history = [
        StoredMessage(id=1, role=Role.USER, text="hello all", user=UserRef("test", "u2", "Bob"))
    ]
    report = build(1000, history, group=True)
    assert report.turns[1].content == "Bob: hello all"
    assert report.turns[-1].content == "Ada: what now"


def test_private_turns_do_not_carry_names() -> None:
    report = build(1000, [StoredMessage(id=1, role=Role.USER, text="hi", user=ADA)])
    assert report.turns[1].content == "hi"


def test_profile_budget_limits_profile_lines() -> None:
    facts = tuple(Fact(f"Fact number {i} about the user") for i in range(20))
    builder = ContextBuilder(COUNTER, "Be brief.", 1000, profile_budget=30)
    report = builder.build(history=[], text="hi", speaker=ADA, profile=UserProfile(facts=facts))
    profile = [s for s in report.segments if s.kind == "profile"]
    included = [s for s in profile if s.included]
    assert 0 < len(included) < len(profile)
    assert sum(s.tokens for s in included) <= 30


def test_guidance_joins_the_instructions() -> None:
    report = build(1000, [], guidance=("Be gentle.",))
    assert report.turns[0].content.startswith("Be brief. Be gentle.")
    assert [s.label for s in report.segments if s.kind == "guidance"] == ["Be gentle."]
    plain = build(1000, [])
    assert report.segments[0].tokens == plain.segments[0].tokens  # not counted twice


def test_learned_facts_are_hidden_when_learning_is_off() -> None:
    facts = (Fact("Likes tea"), Fact("Lives in Lyon", 0.8, 3, learned=True))
    on = build(1000, [], UserProfile(facts=facts)).turns[0].content
    off = build(1000, [], UserProfile(facts=facts, learn_facts=False)).turns[0].content
    assert "Lives in Lyon." in on
    assert "Likes tea." in off
    assert "Lyon" not in off
