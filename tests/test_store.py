"""The store contract, one suite for every backend.

Tests taking ``store`` run on MemoryStore, SqlStore on a SQLite file and SqlStore on a
fresh PostgreSQL database (``-m postgres`` selects those; see tests/conftest.py). The last
test replays random conversations on SqlStore and MemoryStore and compares what they say.
The SQL store's own duties (migrations, connections, failures) are in tests/test_db.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.db import SqlStore, create_engine_for
from core.store import MemoryStore, Store
from core.types import (
    Answer,
    ChatTurn,
    ContextReport,
    ConversationKey,
    Feedback,
    Rating,
    Role,
    Segment,
    StoredMessage,
    UserProfile,
    UserRef,
)

KEY = ConversationKey("slack", "T1", "C1", "1700000000.000100")
OTHER = ConversationKey("telegram", None, "-100200", None)
ANN = UserRef("slack", "U1", "Ann")
BOB = UserRef("slack", "U2", "Bob")


def make_report(message_id: int | None = None) -> ContextReport:
    """A context report with every kind of field set."""
    return ContextReport(
        turns=(ChatTurn(Role.SYSTEM, "Be brief."), ChatTurn(Role.USER, "Ann: hi")),
        segments=(
            Segment(kind="system", label="instructions", tokens=3),
            Segment(kind="fact", label="likes tea", tokens=2, included=False),
            Segment(kind="turn", label="Ann", tokens=4, message_id=message_id),
        ),
        prompt_tokens=7,
        budget_tokens=512,
        dropped_turns=1,
    )


def chat(store: Store, key: ConversationKey, turns: int) -> list[StoredMessage]:
    """Append ``turns`` alternating user and assistant turns; return them as stored."""
    return [
        store.append(key, Role.USER, f"question {i}", user=ANN, platform_message_id=f"m{i}")
        if i % 2 == 0
        else store.append(key, Role.ASSISTANT, f"answer {i}", model_version="v1")
        for i in range(turns)
    ]


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
        facts=("likes tea", "lives in Köln"),
    )
    store.save_profile(ANN, profile)
    assert store.profile(ANN) == profile
    assert store.profile(UserRef("telegram", ANN.id)) == UserProfile()

    replacement = UserProfile(language="en", preferences={"tone": "formal"})
    store.save_profile(ANN, replacement)
    assert store.profile(ANN) == replacement


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
    start = threading.Barrier(threads)
    results: dict[int, list[StoredMessage]] = {}
    errors: list[BaseException] = []

    def work(n: int) -> None:
        user = UserRef("slack", f"U{n % 2}", f"User {n % 2}")  # new people, met concurrently
        try:
            start.wait()
            results[n] = [
                store.append(KEY, Role.USER, f"{n}:{i}", user=user) for i in range(per_thread)
            ]
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert errors == []
    history = store.history(KEY, threads * per_thread + 10)
    ids = [t.id for t in history]
    assert len(history) == threads * per_thread
    assert ids == sorted(set(ids))
    assert set(ids) == {t.id for turns in results.values() for t in turns}
    for n, turns in results.items():
        assert [t.text for t in history if t.text.startswith(f"{n}:")] == [t.text for t in turns]


# ---- SqlStore against MemoryStore, on random conversations -------------------------------

PEOPLE = (ANN, BOB)
ACTIONS = ("user", "assistant", "reset", "history", "answer", "feedback")
Step = tuple[str, int, int]


@pytest.fixture
def sql_store(database_url: str) -> Iterator[SqlStore]:
    """A SqlStore shared by all examples of one test; each example uses its own chats."""
    engine = create_engine_for(database_url)
    yield SqlStore(engine)
    engine.dispose()


def replay(store: Store, steps: list[Step], chat_id: str) -> list[object]:
    """Run ``steps`` on a store and return everything it said, free of ids and times."""
    keys = [
        ConversationKey("slack", None, chat_id, None),
        ConversationKey("slack", "", chat_id, ""),
    ]
    turns: list[StoredMessage] = []
    said: list[object] = []
    for action, k, n in steps:
        key = keys[k]
        if action in ("user", "assistant"):
            user = PEOPLE[n % 2] if action == "user" else None
            turns.append(store.append(key, Role(action), f"{action} {len(turns)}", user=user))
        elif action == "reset":
            store.reset(key)
        elif action == "history":
            said.append([(t.role, t.text, t.user) for t in store.history(key, n)])
        elif turns:
            target = turns[n % len(turns)]
            if action == "answer":
                found = store.answer(target.id)
                said.append(found and (found.message.text, found.conversation))
                continue
            rating = Rating.GOOD if n < 2 else Rating.BAD
            try:
                store.save_feedback(
                    Feedback(answer_id=target.id, user=PEOPLE[n % 2], rating=rating)
                )
            except KeyError:
                said.append("KeyError")
            said.append(sorted((f.user.id, f.rating) for f in store.feedback_for(target.id)))
    return said


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(ACTIONS), st.integers(0, 1), st.integers(0, 5)),
        min_size=5,
        max_size=40,
    )
)
def test_sql_store_says_what_the_memory_store_says(sql_store: SqlStore, steps: list[Step]) -> None:
    chat_id = uuid4().hex
    assert replay(sql_store, steps, chat_id) == replay(MemoryStore(), steps, chat_id)
