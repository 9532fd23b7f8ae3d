"""The store contract on people: forgetting a person, and one person across platforms.

Tests taking ``store`` run on every backend (see tests/test_store.py).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from core.store import LINK_CODE_ALPHABET, Store
from core.types import (
    Answer,
    ConversationKey,
    Fact,
    Feedback,
    Rating,
    Role,
    UserProfile,
    UserRef,
)
from tests.store_fixtures import ANN, BOB, CAROL, DAN, DM, KEY, OTHER, chat

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
