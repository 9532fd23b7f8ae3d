"""The store contract, one suite for every backend: conversations, delivery and events.

Tests taking ``store`` run on MemoryStore, SqlStore on a SQLite file and SqlStore on a
fresh PostgreSQL database (``-m postgres`` selects those; see tests/conftest.py). People
(forgetting, linking) are in tests/test_store_people.py; random conversations replayed on
both stores in tests/test_store_replay.py. The SQL store's own duties (migrations,
connections, failures) are in tests/test_db.py.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from core.sentiment import Mood, Sentiment
from core.store import Store
from core.types import (
    Answer,
    ConversationKey,
    Fact,
    Feedback,
    Rating,
    Role,
    StoredMessage,
    UserProfile,
    UserRef,
    utcnow,
)
from tests.store_fixtures import ANN, BOB, DM, KEY, OTHER, chat, make_report, together


def test_history_returns_the_appended_turns_oldest_first(store: Store) -> None:
    stored = chat(store, KEY, 5)

    assert store.history(KEY, 10) == stored
    assert [t.id for t in stored] == sorted({t.id for t in stored})
    assert [t.user for t in stored] == [ANN, None, ANN, None, ANN]
    assert all(t.created_at.tzinfo is not None for t in store.history(KEY, 10))


def test_history_keeps_only_the_last_limit_turns(store: Store) -> None:
    stored = chat(store, KEY, 5)

    assert store.history(KEY, 3) == stored[-3:]
    assert store.history(KEY, 1) == stored[-1:]
    assert store.history(KEY, 0) == []
    assert store.history(OTHER, 10) == []


def test_reset_starts_a_fresh_history_and_keeps_the_answers(store: Store) -> None:
    _, answer = chat(store, KEY, 2)
    other = store.append(OTHER, Role.USER, "elsewhere", user=BOB)

    store.reset(KEY)
    store.reset(KEY)
    assert store.history(KEY, 10) == []
    assert store.history(OTHER, 10) == [other]
    assert store.answer(answer.id) == Answer(message=answer, conversation=KEY)

    later = store.append(KEY, Role.USER, "new topic", user=ANN)
    assert store.history(KEY, 10) == [later]


def test_reset_of_an_unknown_conversation_changes_nothing(store: Store) -> None:
    store.reset(OTHER)
    first = store.append(OTHER, Role.USER, "hello", user=BOB)

    assert store.history(OTHER, 10) == [first]


def test_none_and_empty_workspace_or_thread_are_different_conversations(store: Store) -> None:
    keys = [
        ConversationKey("slack", workspace, "C1", thread)
        for workspace in (None, "")
        for thread in (None, "")
    ]
    answers = {key: store.append(key, Role.ASSISTANT, key.encode()) for key in keys}

    for key, answer in answers.items():
        assert store.history(key, 10) == [answer]
        assert store.answer(answer.id) == Answer(message=answer, conversation=key)


def test_answer_round_trips_the_context_report(store: Store) -> None:
    question = store.append(KEY, Role.USER, "hi", user=ANN)
    report = make_report(message_id=question.id)
    answer = store.append(KEY, Role.ASSISTANT, "hello", model_version="v7", context=report)

    found = store.answer(answer.id)

    assert found == Answer(message=answer, conversation=KEY)
    assert found.message.context == report
    assert found.message.context.to_json() == report.to_json()
    assert store.history(KEY, 10)[-1].context == report
    assert store.answer(question.id) is None
    assert store.answer(answer.id + 1000) is None


def test_later_feedback_by_the_same_person_replaces_theirs(store: Store) -> None:
    _, answer, _, other_answer = chat(store, KEY, 4)
    given = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2)))
    first = Feedback(answer_id=answer.id, user=ANN, rating=Rating.GOOD, given_at=given)
    bob = Feedback(answer_id=answer.id, user=BOB, correction="Say it shorter.")
    later = Feedback(answer_id=answer.id, user=ANN, rating=Rating.BAD, correction="No: 42.")

    store.save_feedback(first)
    store.save_feedback(bob)
    assert {f.user.id: f for f in store.feedback_for(answer.id)} == {"U1": first, "U2": bob}
    assert store.feedback_for(answer.id)[0].given_at == given

    store.save_feedback(later)
    assert {f.user.id: f for f in store.feedback_for(answer.id)} == {"U1": later, "U2": bob}
    assert store.feedback_for(other_answer.id) == []


def test_feedback_on_anything_but_an_answer_raises_key_error(store: Store) -> None:
    question, answer = chat(store, KEY, 2)

    for answer_id in (question.id, answer.id + 1000):
        with pytest.raises(KeyError):
            store.save_feedback(Feedback(answer_id=answer_id, user=ANN, rating=Rating.GOOD))
        assert store.feedback_for(answer_id) == []


def test_profiles_round_trip_and_start_empty(store: Store) -> None:
    store.append(KEY, Role.USER, "hi", user=ANN)
    assert store.profile(ANN) == UserProfile()

    profile = UserProfile(
        display_name="Annie",
        language="de",
        preferences={"tone": "casual", "units": "metric"},
        facts=(Fact("likes tea"), Fact("lives in Köln")),
    )
    store.save_profile(ANN, profile)
    assert store.profile(ANN) == profile
    assert store.profile(UserRef("telegram", ANN.id)) == UserProfile()

    replacement = UserProfile(language="en", preferences={"tone": "formal"})
    store.save_profile(ANN, replacement)
    assert store.profile(ANN) == replacement


def test_profiles_keep_learned_facts_and_the_learning_switch(store: Store) -> None:
    question = store.append(KEY, Role.USER, "I have two cats", user=ANN)
    learned = Fact("has two cats", confidence=0.75, source_message_id=question.id, learned=True)
    profile = UserProfile(facts=(Fact("likes tea"), learned), learn_facts=False)

    store.save_profile(ANN, profile)
    found = store.profile(ANN)
    assert found == profile
    assert found.facts[1].confidence == 0.75
    assert found.facts[1].source_message_id == question.id
    assert found.facts[1].learned is True
    assert found.learn_facts is False
    assert found.active_facts() == (Fact("likes tea"),)

    store.save_profile(ANN, replace(profile, learn_facts=True))
    assert store.profile(ANN).learn_facts is True
    assert store.profile(ANN).active_facts() == (Fact("likes tea"), learned)


def test_created_at_is_utc(store: Store) -> None:
    stored = store.append(KEY, Role.USER, "hi", user=ANN)
    assert store.history(KEY, 1)[0].created_at.utcoffset() == timedelta(0)
    assert abs(stored.created_at - datetime.now(UTC)) < timedelta(minutes=1)


def test_people_appear_with_their_latest_name(store: Store) -> None:
    store.append(KEY, Role.USER, "hi", user=ANN)
    renamed = UserRef(ANN.platform, ANN.id, "Annie")
    answer = store.append(KEY, Role.ASSISTANT, "hello")
    store.append(KEY, Role.USER, "thanks", user=renamed)
    store.save_feedback(Feedback(answer_id=answer.id, user=renamed, rating=Rating.GOOD))

    assert [t.user for t in store.history(KEY, 3)] == [renamed, None, renamed]
    assert [f.user for f in store.feedback_for(answer.id)] == [renamed]
    # A later event without a name keeps the known one.
    store.append(KEY, Role.USER, "again", user=UserRef(ANN.platform, ANN.id))
    assert store.history(KEY, 1)[0].user == renamed


def test_platform_message_ids_are_kept(store: Store) -> None:
    store.append(KEY, Role.USER, "hi", user=ANN, platform_message_id="1234")
    assert store.history(KEY, 1)[0].platform_message_id == "1234"


def test_concurrent_appends_keep_every_turn_in_order(store: Store) -> None:
    threads, per_thread = 8, 20

    def work(n: int) -> list[StoredMessage]:
        user = UserRef("slack", f"U{n % 2}", f"User {n % 2}")  # new people, met concurrently
        return [store.append(KEY, Role.USER, f"{n}:{i}", user=user) for i in range(per_thread)]

    results = together(threads, work)
    history = store.history(KEY, threads * per_thread + 10)
    ids = [t.id for t in history]
    assert len(history) == threads * per_thread
    assert ids == sorted(set(ids))
    assert set(ids) == {t.id for turns in results.values() for t in turns}
    for n, turns in results.items():
        assert [t.text for t in history if t.text.startswith(f"{n}:")] == [t.text for t in turns]


# ---- Delivery: which platform message shows which stored turn -----------------------------


def test_mark_delivered_records_the_platform_message_of_an_answer(store: Store) -> None:
    question = store.append(KEY, Role.USER, "hi", user=ANN, platform_message_id="100")
    answer = store.append(KEY, Role.ASSISTANT, "hello", model_version="v1")
    assert store.find_by_platform_id(KEY, "100") == question
    assert store.find_by_platform_id(KEY, "101") is None

    store.mark_delivered(answer.id, "101")
    delivered = replace(answer, platform_message_id="101")
    assert store.find_by_platform_id(KEY, "101") == delivered
    assert store.history(KEY, 10) == [question, delivered]
    assert store.answer(answer.id) == Answer(message=delivered, conversation=KEY)

    store.mark_delivered(answer.id, "102")  # a later delivery overwrites
    assert store.find_by_platform_id(KEY, "101") is None
    assert store.find_by_platform_id(KEY, "102") == replace(answer, platform_message_id="102")
    assert store.find_by_platform_id(KEY, "100") == question


def test_find_by_platform_id_is_scoped_to_the_conversation_and_prefers_the_newest(
    store: Store,
) -> None:
    here = store.append(KEY, Role.USER, "here", user=ANN, platform_message_id="7")
    there = store.append(OTHER, Role.USER, "there", user=BOB, platform_message_id="7")
    assert store.find_by_platform_id(KEY, "7") == here
    assert store.find_by_platform_id(OTHER, "7") == there
    assert store.find_by_platform_id(DM, "7") is None

    answer = store.append(KEY, Role.ASSISTANT, "newer")
    store.mark_delivered(answer.id, "7")
    store.append(KEY, Role.USER, "unrelated", user=ANN, platform_message_id="8")
    store.reset(KEY)  # a reset leaves the turns findable
    assert store.find_by_platform_id(KEY, "7") == replace(answer, platform_message_id="7")
    assert store.find_by_platform_id(OTHER, "7") == there


def test_mark_delivered_of_an_unknown_message_raises_key_error(store: Store) -> None:
    (question,) = chat(store, KEY, 1)

    with pytest.raises(KeyError):
        store.mark_delivered(question.id + 1000, "1")
    assert store.find_by_platform_id(KEY, "1") is None
    assert store.history(KEY, 10) == [question]


# ---- Events: each platform event is handled once -----------------------------------------


def test_claim_event_is_true_only_the_first_time(store: Store) -> None:
    assert store.claim_event("slack", "Ev1") is True
    assert store.claim_event("slack", "Ev1") is False
    assert store.claim_event("slack", "Ev1") is False
    assert store.claim_event("telegram", "Ev1") is True  # platforms are independent
    assert store.claim_event("slack", "Ev2") is True
    assert store.claim_event("telegram", "Ev1") is False


def test_concurrent_claims_of_one_event_have_exactly_one_winner(store: Store) -> None:
    threads, events = 8, 25

    def work(n: int) -> list[bool]:
        return [store.claim_event("slack", f"Ev{i}") for i in range(events)]

    won = together(threads, work)
    assert len(won) == threads
    for i in range(events):
        assert sum(claims[i] for claims in won.values()) == 1, f"Ev{i}"


def test_purge_events_forgets_only_the_older_events(store: Store) -> None:
    store.claim_event("slack", "old")
    time.sleep(0.01)
    cutoff = utcnow()
    time.sleep(0.01)
    store.claim_event("slack", "new")

    assert store.purge_events(cutoff - timedelta(hours=1)) == 0
    assert store.purge_events(cutoff) == 1
    assert store.claim_event("slack", "new") is False
    assert store.claim_event("slack", "old") is True  # forgotten, so claimable again
    assert store.purge_events(utcnow() + timedelta(minutes=1)) == 2
    assert store.claim_event("slack", "new") is True


def test_a_released_event_is_new_again(store: Store) -> None:
    assert store.claim_event("telegram", "7")
    assert not store.claim_event("telegram", "7")
    store.release_event("telegram", "7")
    assert store.claim_event("telegram", "7")
    store.release_event("telegram", "unknown")  # nothing to release: no error


def test_sentiment_is_kept_with_the_message(store: Store) -> None:
    reading = Sentiment(Mood.NEGATIVE, -0.75, 0.9)
    store.append(KEY, Role.USER, "this is awful", user=ANN, sentiment=reading)
    store.append(KEY, Role.ASSISTANT, "sorry to hear that")
    first, second = store.history(KEY, 2)
    assert first.sentiment == reading
    assert second.sentiment is None
