"""Profiles: learned facts, explicit settings, /link, and the real model following them."""

from __future__ import annotations

import pytest

from config.settings import DEFAULT_SYSTEM_PROMPT
from core.conversation import SHORT_ANSWER_TOKENS, ConversationOptions, ConversationService
from core.facts import MAX_LEARNED_FACTS, extract_facts, merge_facts
from core.memory import MemoryStore
from core.types import Fact, UserProfile
from tests.factories import assemble_service, make_message, make_service, make_user
from workers.batching import BatchedGenerator


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Hi, my name is Ada Lovelace and I live in London.",
            ["The user's name is Ada Lovelace", "The user lives in London"],
        ),
        (
            "I'm a data scientist. I love hiking, but I hate running.",
            ["The user is a data scientist", "The user likes hiking", "The user dislikes running"],
        ),
        (
            "I work at Acme Corp. I'm vegetarian!",
            ["The user works at Acme Corp", "The user is vegetarian"],
        ),
        ("I'm a bit tired today.", []),
        ("Do I like tea?", []),
        ("If I lived in Paris I would be happy.", []),
        ("i live in berlin", []),
    ],
)
def test_extract_facts(text: str, expected: list[str]) -> None:
    facts = extract_facts(text, source_message_id=7)
    assert [f.text for f in facts] == expected
    assert all(f.learned and f.source_message_id == 7 and 0 < f.confidence <= 1 for f in facts)


def test_merge_keeps_explicit_facts_and_caps_learned_ones() -> None:
    profile = UserProfile(facts=(Fact("The user likes tea"),))
    merged = merge_facts(profile, [Fact("the user likes tea", 0.5, 1, learned=True)])
    assert merged is profile
    many = [Fact(f"The user likes thing {i}", 0.7, i, learned=True) for i in range(30)]
    capped = merge_facts(profile, many)
    learned = [f for f in capped.facts if f.learned]
    assert len(learned) == MAX_LEARNED_FACTS
    assert learned[-1].text == "The user likes thing 29"
    assert capped.facts[0] == Fact("The user likes tea")


async def test_facts_are_learned_with_their_source_and_used() -> None:
    service, store, generator = make_service()
    await service.handle(make_message("By the way, I live in Lyon.")).collect()
    [fact] = store.profile(make_user()).facts
    user_turn = store.history(make_message("x").key, 10)[0]
    assert fact == Fact("The user lives in Lyon", 0.8, user_turn.id, learned=True)
    await service.handle(make_message("Any tips for the weekend?")).collect()
    assert "The user lives in Lyon." in generator.requests[-1].turns[0].content


async def test_learning_can_be_turned_off() -> None:
    service, store, generator = make_service()
    await service.handle(make_message("I live in Lyon.")).collect()
    reply = await service.handle(make_message("/profile learning off")).collect()
    assert "not used" in reply.text
    await service.handle(make_message("I'm vegetarian.")).collect()
    profile = store.profile(make_user())
    assert [f.text for f in profile.facts] == ["The user lives in Lyon"]
    assert "Lyon" not in generator.requests[-1].turns[0].content


async def test_explicit_facts_and_forgetting_one() -> None:
    service, store, _ = make_service()
    await service.handle(make_message("/profile fact I have two cats")).collect()
    await service.handle(make_message("I live in Lyon.")).collect()
    shown = (await service.handle(make_message("/profile")).collect()).text
    assert "fact 1: I have two cats (set by you)" in shown
    assert "fact 2: The user lives in Lyon (learned, 80% sure)" in shown
    await service.handle(make_message("/profile forget 2")).collect()
    assert [f.text for f in store.profile(make_user()).facts] == ["I have two cats"]
    assert "no fact 5" in (await service.handle(make_message("/profile forget 5")).collect()).text


async def test_short_answers_are_capped() -> None:
    service, _, generator = make_service(max_new_tokens=400)
    await service.handle(make_message("/profile length short")).collect()
    await service.handle(make_message("Tell me about the sea.")).collect()
    assert generator.requests[-1].max_new_tokens == SHORT_ANSWER_TOKENS
    assert "Keep your answers short" in generator.requests[-1].turns[0].content


async def test_link_shares_one_profile_across_platforms() -> None:
    store = MemoryStore()
    service, _, _ = make_service(store=store)
    on_telegram = make_user("t1", "Ada", platform="telegram")
    on_slack = make_user("U1", "ada", platform="slack")
    await service.handle(make_message("/profile tone friendly", user=on_telegram)).collect()
    offer = (await service.handle(make_message("/link", user=on_telegram)).collect()).text
    code = offer.split("link code is ")[1].split(".")[0]
    linked = await service.handle(make_message(f"/link {code.lower()}", user=on_slack)).collect()
    assert "Linked" in linked.text
    assert "telegram" in linked.text
    assert store.profile(on_slack).preferences == {"tone": "friendly"}
    await service.handle(make_message("/profile length short", user=on_slack)).collect()
    assert store.profile(on_telegram).preferences == {"tone": "friendly", "length": "short"}
    again = await service.handle(make_message(f"/link {code}", user=on_slack)).collect()
    assert "unknown, already used or expired" in again.text
    shown = (await service.handle(make_message("/profile", user=on_telegram)).collect()).text
    assert "Linked accounts: slack" in shown


def _real_service(generator: BatchedGenerator) -> tuple[ConversationService, MemoryStore]:
    store = MemoryStore()
    options = ConversationOptions(
        system_prompt=DEFAULT_SYSTEM_PROMPT, prompt_budget=1500, max_new_tokens=160
    )
    service = assemble_service(store, generator, generator.tokens, options)
    return service, store


@pytest.mark.slow
async def test_the_real_model_follows_the_profile(generator: BatchedGenerator) -> None:
    # Length is the preference the 135M model reliably follows (with the token cap behind it);
    # it does not reliably use a name or a fact from the prompt, so those are checked on the
    # prompt in the fast tests, not on the model's words here.
    service, _ = _real_service(generator)
    question = "Explain how rain forms."
    long_user, short_user = make_user("long"), make_user("short")
    await service.handle(make_message("/profile length detailed", user=long_user)).collect()
    await service.handle(make_message("/profile length short", user=short_user)).collect()
    long = await service.handle(make_message(question, user=long_user)).collect()
    short = await service.handle(make_message(question, user=short_user)).collect()
    assert generator.tokens.count_text(short.text) < generator.tokens.count_text(long.text)
    assert generator.tokens.count_text(short.text) <= SHORT_ANSWER_TOKENS
