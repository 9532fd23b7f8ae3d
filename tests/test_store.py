"""The store contract, one suite for every backend.

Tests taking ``store`` run on MemoryStore, SqlStore on a SQLite file and SqlStore on a
fresh PostgreSQL database (``-m postgres`` selects those; see tests/conftest.py). The last
test replays random conversations on SqlStore and MemoryStore and compares what they say.
The SQL store's own duties (migrations, connections, failures) are in tests/test_db.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.db import SqlStore, create_engine_for
from core.memory import MemoryStore
from core.sentiment import Mood, Sentiment
from core.store import LINK_CODE_ALPHABET, Store
from core.types import (
    Answer,
    ChatTurn,
    ContextReport,
    ConversationKey,
    Fact,
    Feedback,
    Rating,
    Role,
    Segment,
    StoredMessage,
    UserProfile,
    UserRef,
    utcnow,
)

KEY = ConversationKey("slack", "T1", "C1", "1700000000.000100")
OTHER = ConversationKey("telegram", None, "-100200", None)
ANN = UserRef("slack", "U1", "Ann")
BOB = UserRef("slack", "U2", "Bob")
CAROL = UserRef("telegram", "42", "Carol")
DAN = UserRef("telegram", "43", "Dan")
DM = ConversationKey("slack", "T1", "D1", None)


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
    start = threading.Barrier(threads)
    won: dict[int, list[bool]] = {}
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            start.wait()
            won[n] = [store.claim_event("slack", f"Ev{i}") for i in range(events)]
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert errors == []
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


# ---- Privacy: forgetting a person ----------------------------------------------------------


def test_forget_in_a_private_chat_removes_the_chat_and_everything_about_the_person(
    store: Store,
) -> None:
    private = ConversationKey("telegram", None, "42", None)
    question = store.append(private, Role.USER, "hi", user=CAROL, platform_message_id="1")
    answer = store.append(private, Role.ASSISTANT, "hello", model_version="v1")
    store.mark_delivered(answer.id, "2")
    store.save_feedback(Feedback(answer_id=answer.id, user=CAROL, rating=Rating.GOOD))
    store.save_profile(CAROL, UserProfile(language="de", facts=(Fact("likes tea"),)))
    # Dan, untouched, except for the feedback Carol gave on his answer.
    dans = ConversationKey("telegram", None, "43", None)
    dan_turns = [
        store.append(dans, Role.USER, "hey", user=DAN, platform_message_id="1"),
        store.append(dans, Role.ASSISTANT, "hey Dan"),
    ]
    dan_feedback = Feedback(answer_id=dan_turns[1].id, user=DAN, rating=Rating.BAD)
    store.save_feedback(dan_feedback)
    store.save_feedback(Feedback(answer_id=dan_turns[1].id, user=CAROL, rating=Rating.GOOD))
    dan_profile = UserProfile(display_name="Daniel")
    store.save_profile(DAN, dan_profile)

    # 2 messages, 1 conversation, 2 feedback, 1 profile, 1 person.
    assert store.forget(CAROL) == 7

    assert store.history(private, 10) == []
    assert store.answer(answer.id) is None
    assert store.answer(question.id) is None
    assert store.feedback_for(answer.id) == []
    assert store.find_by_platform_id(private, "1") is None
    assert store.find_by_platform_id(private, "2") is None
    assert store.profile(CAROL) == UserProfile()
    assert store.history(dans, 10) == dan_turns
    assert store.answer(dan_turns[1].id) == Answer(message=dan_turns[1], conversation=dans)
    assert store.feedback_for(dan_turns[1].id) == [dan_feedback]
    assert store.profile(DAN) == dan_profile
    assert store.forget(CAROL) == 0


def test_forget_in_a_shared_conversation_removes_only_their_messages_and_feedback(
    store: Store,
) -> None:
    ann_asks = store.append(KEY, Role.USER, "Ann asks", user=ANN, platform_message_id="a1")
    bob_asks = store.append(KEY, Role.USER, "Bob asks", user=BOB, platform_message_id="b1")
    answer = store.append(KEY, Role.ASSISTANT, "for both", model_version="v1")
    store.mark_delivered(answer.id, "p1")
    store.append(KEY, Role.USER, "Ann thanks", user=ANN)
    later = store.append(KEY, Role.ASSISTANT, "welcome")
    bob_feedback = Feedback(answer_id=answer.id, user=BOB, rating=Rating.BAD)
    store.save_feedback(Feedback(answer_id=answer.id, user=ANN, rating=Rating.GOOD))
    store.save_feedback(bob_feedback)
    store.save_feedback(Feedback(answer_id=later.id, user=ANN, correction="You're welcome."))
    store.save_profile(ANN, UserProfile(language="en"))
    bob_profile = UserProfile(language="fr")
    store.save_profile(BOB, bob_profile)
    ann_dm = [store.append(DM, Role.USER, "psst", user=ANN), store.append(DM, Role.ASSISTANT, "?")]
    bob_alone = store.append(OTHER, Role.USER, "alone", user=BOB)

    # Shared: 2 messages, 2 feedback. Private DM: 2 messages, 1 conversation. Profile, person.
    assert store.forget(ANN) == 9

    delivered = replace(answer, platform_message_id="p1")
    assert store.history(KEY, 10) == [bob_asks, delivered, later]
    assert store.answer(answer.id) == Answer(message=delivered, conversation=KEY)
    assert store.answer(later.id) == Answer(message=later, conversation=KEY)
    assert store.feedback_for(answer.id) == [bob_feedback]
    assert store.feedback_for(later.id) == []
    assert store.find_by_platform_id(KEY, "a1") is None
    assert store.find_by_platform_id(KEY, "b1") == bob_asks
    assert store.history(DM, 10) == []
    assert store.answer(ann_dm[1].id) is None
    assert store.history(OTHER, 10) == [bob_alone]
    assert store.profile(ANN) == UserProfile()
    assert store.profile(BOB) == bob_profile
    assert ann_asks.id not in {t.id for t in store.history(KEY, 10)}


def test_forget_of_someone_unknown_removes_nothing(store: Store) -> None:
    stored = chat(store, KEY, 4)

    assert store.forget(BOB) == 0
    assert store.forget(UserRef("telegram", ANN.id, "Ann")) == 0  # same id, other platform
    assert store.history(KEY, 10) == stored


def test_after_forget_the_person_starts_afresh(store: Store) -> None:
    old = chat(store, KEY, 4)
    store.save_profile(ANN, UserProfile(facts=(Fact("likes tea"),)))
    assert store.forget(ANN) == 4 + 1 + 1 + 1  # messages, conversation, profile, person

    nameless = UserRef(ANN.platform, ANN.id)
    question = store.append(KEY, Role.USER, "again", user=nameless, platform_message_id="m0")
    answer = store.append(KEY, Role.ASSISTANT, "hello again")
    store.save_feedback(Feedback(answer_id=answer.id, user=nameless, rating=Rating.GOOD))

    assert question.id > old[-1].id
    assert store.history(KEY, 10) == [question, answer]
    assert store.history(KEY, 10)[0].user == nameless  # the forgotten name stays forgotten
    assert store.find_by_platform_id(KEY, "m0") == question
    assert store.profile(ANN) == UserProfile()
    assert [f.user for f in store.feedback_for(answer.id)] == [nameless]
    assert store.forget(ANN) == 2 + 1 + 1 + 1  # messages, conversation, feedback, person


# ---- Identities: one person, one profile across platforms (/link) --------------------------


def link(store: Store, owner: UserRef, joining: UserRef) -> UserRef | None:
    """Let ``owner`` make a code and ``joining`` redeem it; return what the redeem says."""
    return store.redeem_link_code(store.create_link_code(owner), joining)


def test_link_codes_are_short_unambiguous_and_new_each_time(store: Store) -> None:
    codes = [store.create_link_code(ANN) for _ in range(5)]

    assert len(set(codes)) == 5
    for code in codes:
        assert len(code) == 8
        assert set(code) <= set(LINK_CODE_ALPHABET)
    assert not set("01OIL") & set(LINK_CODE_ALPHABET)


def test_a_redeemed_code_links_two_platforms_to_one_profile(store: Store) -> None:
    profile = UserProfile(language="de", facts=(Fact("likes tea"),))
    store.save_profile(ANN, profile)
    assert store.profile(CAROL) == UserProfile()

    assert link(store, ANN, CAROL) == ANN
    assert store.profile(CAROL) == profile
    assert store.profile(ANN) == profile

    changed = UserProfile(language="en", learn_facts=False)
    store.save_profile(CAROL, changed)
    assert store.profile(ANN) == changed
    store.save_profile(ANN, profile)
    assert store.profile(CAROL) == profile
    assert store.profile(BOB) == UserProfile()  # nobody else shares it


def test_linking_merges_profiles_keeping_the_code_owners_values(store: Store) -> None:
    learned = Fact("has a cat", confidence=0.6, source_message_id=3, learned=True)
    store.save_profile(
        ANN,
        UserProfile(
            display_name="Ann",
            preferences={"tone": "casual"},
            facts=(Fact("Likes tea"), learned),
        ),
    )
    store.save_profile(
        CAROL,
        UserProfile(
            display_name="Carol",
            language="de",
            preferences={"tone": "formal", "units": "metric"},
            facts=(Fact(" likes TEA "), Fact("lives in Köln")),
            learn_facts=False,
        ),
    )

    assert link(store, ANN, CAROL) == ANN

    merged = UserProfile(
        display_name="Ann",
        language="de",
        preferences={"tone": "casual", "units": "metric"},
        facts=(Fact("Likes tea"), learned, Fact("lives in Köln")),
        learn_facts=False,  # off is the choice someone made; on is only the default
    )
    assert store.profile(ANN) == merged
    assert store.profile(CAROL) == merged


def test_linking_someone_without_a_profile_keeps_the_other_one(store: Store) -> None:
    carols = UserProfile(language="de", facts=(Fact("likes tea"),), learn_facts=False)
    store.save_profile(CAROL, carols)

    assert link(store, ANN, CAROL) == ANN  # Ann has no profile: Carol's fills it all
    assert store.profile(ANN) == carols

    anns = UserProfile(language="en")
    store.save_profile(BOB, UserProfile())
    store.save_profile(DAN, anns)
    assert link(store, DAN, BOB) == DAN  # Bob's empty profile changes nothing
    assert store.profile(BOB) == anns


def test_a_code_works_once_before_it_expires_from_another_identity(store: Store) -> None:
    code = store.create_link_code(ANN)
    assert store.redeem_link_code(code, ANN) is None  # one's own code
    assert store.redeem_link_code("ZZZZZZZZ" if code != "ZZZZZZZZ" else "YYYYYYYY", CAROL) is None
    assert store.redeem_link_code("", CAROL) is None
    assert store.linked_identities(ANN) == [ANN]

    assert store.redeem_link_code(code, CAROL) == ANN  # still usable after the refusals
    assert store.redeem_link_code(code, DAN) is None  # used
    assert store.linked_identities(DAN) == [DAN]

    expired = store.create_link_code(BOB, ttl=timedelta(seconds=-1))
    assert store.redeem_link_code(expired, DAN) is None
    assert store.linked_identities(BOB) == [BOB]


def test_codes_match_whatever_the_case_and_surrounding_spaces(store: Store) -> None:
    code = store.create_link_code(ANN)

    assert store.redeem_link_code(f"  {code.lower()}\n", CAROL) == ANN
    assert store.linked_identities(ANN) == [ANN, CAROL]


def test_a_new_code_replaces_the_persons_unused_one(store: Store) -> None:
    first = store.create_link_code(ANN)
    second = store.create_link_code(ANN)

    assert store.redeem_link_code(first, CAROL) is None
    assert store.redeem_link_code(second, CAROL) == ANN
    # Bob's code is his own and outlives Ann's new ones.
    bobs = store.create_link_code(BOB)
    store.create_link_code(ANN)
    assert store.redeem_link_code(bobs, DAN) == BOB


def test_linked_identities_lists_the_person_first_then_the_others(store: Store) -> None:
    store.append(KEY, Role.USER, "hi", user=ANN)
    assert store.linked_identities(CAROL) == [CAROL]  # unknown: just themselves
    assert link(store, ANN, CAROL) == ANN
    assert link(store, CAROL, DAN) == CAROL  # any identity of the person can invite

    assert store.linked_identities(ANN) == [ANN, CAROL, DAN]
    assert store.linked_identities(DAN) == [DAN, ANN, CAROL]
    assert store.linked_identities(UserRef(CAROL.platform, CAROL.id)) == [CAROL, ANN, DAN]
    assert store.linked_identities(BOB) == [BOB]
    # Linking again within the person changes nothing but uses the code.
    assert link(store, DAN, ANN) == DAN
    assert store.linked_identities(ANN) == [ANN, CAROL, DAN]


def test_linking_brings_along_everyone_already_linked(store: Store) -> None:
    store.save_profile(ANN, UserProfile(language="en"))
    store.save_profile(CAROL, UserProfile(language="de", facts=(Fact("likes tea"),)))
    assert link(store, CAROL, DAN) == CAROL  # Carol and Dan: one person

    assert link(store, ANN, DAN) == ANN  # Dan joins Ann, and brings Carol
    shared = UserProfile(language="en", facts=(Fact("likes tea"),))
    for identity in (ANN, CAROL, DAN):
        assert store.profile(identity) == shared
    assert store.linked_identities(CAROL) == [CAROL, ANN, DAN]
    store.save_profile(CAROL, UserProfile(language="fr"))
    assert store.profile(ANN) == UserProfile(language="fr")


def test_forgetting_a_linked_person_forgets_every_identity(store: Store) -> None:
    slack_dm = ConversationKey("slack", "T1", "D1", None)
    telegram_dm = ConversationKey("telegram", None, "42", None)
    store.append(slack_dm, Role.USER, "hi", user=ANN)
    store.append(slack_dm, Role.ASSISTANT, "hello")
    store.append(telegram_dm, Role.USER, "hi", user=CAROL)
    carols_answer = store.append(telegram_dm, Role.ASSISTANT, "hello")
    store.save_feedback(Feedback(answer_id=carols_answer.id, user=CAROL, rating=Rating.GOOD))
    bob_asks = store.append(KEY, Role.USER, "Bob here", user=BOB)
    store.append(KEY, Role.USER, "me too", user=ANN)
    store.save_profile(BOB, UserProfile(language="fr"))
    store.save_profile(ANN, UserProfile(language="en"))
    assert link(store, ANN, CAROL) == ANN
    unused = store.create_link_code(CAROL)

    # 5 messages, 2 conversations, 1 feedback, 1 profile, 2 identities.
    assert store.forget(CAROL) == 11

    for identity in (ANN, CAROL):
        assert store.profile(identity) == UserProfile()
        assert store.linked_identities(identity) == [identity]
        assert store.forget(identity) == 0
    assert store.history(slack_dm, 10) == []
    assert store.history(telegram_dm, 10) == []
    assert store.history(KEY, 10) == [bob_asks]
    assert store.profile(BOB) == UserProfile(language="fr")
    assert store.redeem_link_code(unused, DAN) is None
    # They come back as strangers to each other.
    store.save_profile(CAROL, UserProfile(language="de"))
    assert store.profile(ANN) == UserProfile()


# ---- SqlStore against MemoryStore, on random conversations -------------------------------

ACTIONS = (
    "user",
    "assistant",
    "reset",
    "history",
    "answer",
    "feedback",
    "deliver",
    "find",
    "claim",
    "forget",
    "profile",
    "link",
    "ask",
    "job",
    "next",
)
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
    # People of this example only, so that forgetting them leaves other examples alone.
    people = (UserRef("slack", f"{chat_id}-ann", "Ann"), UserRef("slack", f"{chat_id}-bob"))
    turns: list[StoredMessage] = []
    said: list[object] = []
    for action, k, n in steps:
        key = keys[k]
        if action in ("user", "assistant", "ask"):
            role = Role.ASSISTANT if action == "assistant" else Role.USER
            user = people[n % 2] if role is Role.USER else None
            platform_id = f"p{n}" if role is Role.USER else None
            text = f"{action} {len(turns)}"
            turns.append(
                store.append(
                    key,
                    role,
                    text,
                    user=user,
                    platform_message_id=platform_id,
                    expects_answer=action == "ask",
                )
            )
        elif action == "next":
            first = store.next_job(key)
            said.append(next((t.text for t in turns if t.id == first), first))
        elif action == "reset":
            store.reset(key)
        elif action == "history":
            said.append([(t.role, t.text, t.user) for t in store.history(key, n)])
        elif action == "find":
            found_turn = store.find_by_platform_id(key, f"p{n}")
            said.append(found_turn and (found_turn.text, found_turn.user))
        elif action == "claim":
            said.append(store.claim_event("slack", f"{chat_id}-{n % 3}"))
        elif action == "forget":
            said.append(store.forget(people[n % 2]))
        elif action == "profile":
            person, other = people[n % 2], people[(n + 1) % 2]
            mine = store.profile(person)
            store.save_profile(person, replace(mine, facts=(*mine.facts, Fact(f"fact {n}"))))
            said.append((store.profile(person), store.profile(other)))
        elif action == "link":
            person, other = people[n % 2], people[(n + 1) % 2]
            code = store.create_link_code(person)
            said.append(store.redeem_link_code(code, other if n < 4 else person))
            said.append(store.linked_identities(other))
        elif turns:
            target = turns[n % len(turns)]
            if action == "answer":
                found = store.answer(target.id)
                said.append(found and (found.message.text, found.conversation))
                continue
            if action == "deliver":
                try:
                    store.mark_delivered(target.id, f"p{n}")
                except KeyError:
                    said.append("KeyError")
                continue
            if action == "job":
                said.append(run_job(store, target.id, n, turns))
                continue
            rating = Rating.GOOD if n < 2 else Rating.BAD
            try:
                store.save_feedback(
                    Feedback(answer_id=target.id, user=people[n % 2], rating=rating)
                )
            except KeyError:
                said.append("KeyError")
            said.append(sorted((f.user.id, f.rating) for f in store.feedback_for(target.id)))
    return said


def run_job(store: Store, message_id: int, n: int, turns: list[StoredMessage]) -> object:
    """Claim a message's job, then finish it, fail it or leave it running, as ``n`` says."""
    claim = store.claim_job(message_id, lease_seconds=600, max_attempts=2)
    ended: object = None
    if claim.token is not None and n % 3 == 0:
        answer = store.finish_job(
            message_id, claim.token, f"answer {len(turns)}", model_version="v1", context=None
        )
        if answer is not None:
            turns.append(answer)
            ended = answer.text
    elif claim.token is not None and n % 3 == 1:
        ended = store.fail_job(message_id, f"failed {n}", token=claim.token)
    elif n == 5:
        ended = store.fail_job(message_id, "given up")
    job = store.job(message_id)
    state = job and (job.status, job.attempts, job.error, job.answer_id is not None)
    return claim.outcome, ended, state


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


def test_sentiment_is_kept_with_the_message(store: Store) -> None:
    reading = Sentiment(Mood.NEGATIVE, -0.75, 0.9)
    store.append(KEY, Role.USER, "this is awful", user=ANN, sentiment=reading)
    store.append(KEY, Role.ASSISTANT, "sorry to hear that")
    first, second = store.history(KEY, 2)
    assert first.sentiment == reading
    assert second.sentiment is None
