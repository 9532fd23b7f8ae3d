"""Feedback as the fine-tuning loop reads it, and the figures per model version, on every store."""

from __future__ import annotations

from datetime import timedelta

from core.store import Store
from core.types import (
    ChatTurn,
    ContextReport,
    ConversationKey,
    Feedback,
    Rating,
    Role,
    UserProfile,
    utcnow,
)
from tests.factories import make_message, make_service, make_user

KEY = ConversationKey("slack", "T1", "C1")


def _answer(store: Store, question: str, answer: str, version: str = "base") -> int:
    asker = make_user("asker", platform="slack")
    store.append(KEY, Role.USER, question, user=asker)
    context = ContextReport(
        turns=(ChatTurn(Role.SYSTEM, "Be brief."), ChatTurn(Role.USER, question)),
        segments=(),
        prompt_tokens=9,
        budget_tokens=100,
    )
    return store.append(KEY, Role.ASSISTANT, answer, model_version=version, context=context).id


def test_records_carry_the_prompt_as_it_was_the_answer_and_the_verdict(store: Store) -> None:
    answer_id = _answer(store, "Capital of France?", "Paris.", version="v1")
    ada = make_user("ada", platform="slack")
    store.save_feedback(Feedback(answer_id=answer_id, user=ada, rating=Rating.BAD))
    store.save_feedback(
        Feedback(answer_id=answer_id, user=ada, rating=Rating.GOOD, correction="It is Paris.")
    )

    [record] = store.feedback_records()

    assert record.answer_id == answer_id
    assert record.prompt == (
        ChatTurn(Role.SYSTEM, "Be brief."),
        ChatTurn(Role.USER, "Capital of France?"),
    )
    assert record.answer == "Paris."
    assert (record.rating, record.correction) == (Rating.GOOD, "It is Paris.")  # replaced
    assert record.model_version == "v1"
    assert record.platform == "slack"
    assert record.trusted
    assert record.allows_training


def test_public_users_are_untrusted_and_opted_out_people_are_marked(store: Store) -> None:
    answer_id = _answer(store, "Hi", "Hello!")
    public = make_user("t1", platform="telegram")
    shy = make_user("shy", platform="slack")
    store.save_profile(shy, UserProfile(allows_training=False))
    store.save_feedback(Feedback(answer_id=answer_id, user=public, rating=Rating.GOOD))
    store.save_feedback(Feedback(answer_id=answer_id, user=shy, rating=Rating.BAD))

    records = {r.platform: r for r in store.feedback_records()}

    assert not records["telegram"].trusted
    assert records["telegram"].allows_training
    assert records["slack"].trusted
    assert not records["slack"].allows_training
    assert records["telegram"].person != records["slack"].person
    assert all(r.trusted for r in store.feedback_records(untrusted_platforms=()))


def test_linked_accounts_are_one_person(store: Store) -> None:
    answer_id = _answer(store, "Hi", "Hello!")
    other = _answer(store, "Bye", "Goodbye!")
    on_slack = make_user("ada", platform="slack")
    on_telegram = make_user("42", platform="telegram")
    code = store.create_link_code(on_slack)
    store.redeem_link_code(code, on_telegram)
    store.save_feedback(Feedback(answer_id=answer_id, user=on_slack, rating=Rating.GOOD))
    store.save_feedback(Feedback(answer_id=other, user=on_telegram, rating=Rating.GOOD))

    people = {r.person for r in store.feedback_records()}

    assert len(people) == 1


def test_the_window_selects_by_when_feedback_was_given(store: Store) -> None:
    answer_id = _answer(store, "Hi", "Hello!")
    now = utcnow()
    old = Feedback(
        answer_id=answer_id,
        user=make_user("a"),
        rating=Rating.GOOD,
        given_at=now - timedelta(days=3),
    )
    new = Feedback(answer_id=answer_id, user=make_user("b"), rating=Rating.BAD, given_at=now)
    store.save_feedback(old)
    store.save_feedback(new)

    window = store.feedback_records(since=now - timedelta(days=1), until=now + timedelta(seconds=1))

    assert [r.rating for r in window] == [Rating.BAD]
    assert [r.rating for r in store.feedback_records()] == [Rating.GOOD, Rating.BAD]


def test_forgotten_people_leave_no_records(store: Store) -> None:
    answer_id = _answer(store, "Hi", "Hello!")
    ada = make_user("ada")
    store.save_feedback(Feedback(answer_id=answer_id, user=ada, rating=Rating.GOOD))
    store.forget(ada)

    assert store.feedback_records() == []


def test_rates_per_model_version(store: Store) -> None:
    first = _answer(store, "a", "A", version="base")
    _answer(store, "b", "B", version="base")
    tuned = _answer(store, "c", "C", version="base+ft-1")
    store.save_feedback(Feedback(answer_id=first, user=make_user("x"), rating=Rating.BAD))
    store.save_feedback(
        Feedback(answer_id=first, user=make_user("y"), rating=Rating.BAD, correction="a!")
    )
    store.save_feedback(Feedback(answer_id=tuned, user=make_user("x"), rating=Rating.GOOD))

    rates = {r.model_version: r for r in store.feedback_rates()}

    assert (rates["base"].answers, rates["base"].good, rates["base"].bad) == (2, 0, 2)
    assert rates["base"].corrections == 1
    assert rates["base"].good_rate == 0.0
    assert (rates["base+ft-1"].answers, rates["base+ft-1"].good_rate) == (1, 1.0)
    assert [r.model_version for r in store.feedback_rates()] == ["base", "base+ft-1"]


async def test_profile_training_off_keeps_a_persons_feedback_out_of_training() -> None:
    service, store, _ = make_service()
    ada = make_user("ada")

    off = await service.handle(make_message("/profile training off", user=ada)).collect()
    await service.handle(make_message("What is 2+2?", user=ada)).collect()
    await service.handle(make_message("/feedback good", user=ada)).collect()

    assert "never used to train me" in off.text
    assert not store.profile(ada).allows_training
    [record] = store.feedback_records()
    assert not record.allows_training
    on = await service.handle(make_message("/profile training on", user=ada)).collect()
    assert "never used to train" not in on.text
    assert store.feedback_records()[0].allows_training


def test_person_key_names_the_person_of_the_records(store: Store) -> None:
    answer_id = _answer(store, "Hi", "Hello!")
    ada = make_user("ada", platform="slack")
    assert store.person_key(ada) is None
    store.save_feedback(Feedback(answer_id=answer_id, user=ada, rating=Rating.GOOD))
    on_telegram = make_user("42", platform="telegram")
    store.redeem_link_code(store.create_link_code(ada), on_telegram)

    [record] = store.feedback_records()

    assert store.person_key(ada) == record.person
    assert store.person_key(on_telegram) == record.person


async def test_clearing_the_profile_keeps_the_training_choice() -> None:
    service, store, _ = make_service()
    ada = make_user("ada")
    await service.handle(make_message("/profile training off", user=ada)).collect()
    await service.handle(make_message("/profile name Ada", user=ada)).collect()

    await service.handle(make_message("/profile clear", user=ada)).collect()

    assert store.profile(ada).display_name is None
    assert not store.profile(ada).allows_training
