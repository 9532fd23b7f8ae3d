"""Answer jobs (core/jobs.py): the lifecycle and the order within a conversation.

Tests taking ``store`` run on MemoryStore, SqlStore on a SQLite file and SqlStore on a
fresh PostgreSQL database (``-m postgres`` selects those). Attempts, failures, the
reconciler and forgetting are in tests/test_job_failures.py; the SQL tables and races
across processes in tests/test_jobs_sql.py.
"""

from __future__ import annotations

import time
from datetime import timedelta

from core.jobs import Claim, ClaimOutcome, Job, JobStatus
from core.store import Store
from core.types import (
    Answer,
    Role,
    StoredMessage,
    utcnow,
)
from tests.job_fixtures import (
    BOB,
    CAROL,
    EXPIRE,
    KEY,
    LEASE,
    OTHER,
    SHORT_LEASE,
    THIRD,
    answers,
    ask,
    claim,
    finish,
    report,
)
from tests.store_fixtures import together

# ---- Opening and the lifecycle ---------------------------------------------------------------


def test_a_message_that_expects_an_answer_gets_a_queued_job(store: Store) -> None:
    before = utcnow()
    question = ask(store)
    plain = store.append(KEY, Role.USER, "no answer needed", user=BOB)

    job = store.job(question.id)
    assert job is not None
    assert job == Job(
        message_id=question.id,
        key=KEY,
        status=JobStatus.QUEUED,
        attempts=0,
        created_at=job.created_at,
        updated_at=job.created_at,
    )
    assert before - timedelta(seconds=1) <= job.created_at <= utcnow()
    assert job.created_at.utcoffset() == timedelta(0)
    assert store.history(KEY, 10) == [question, plain]
    assert store.job(plain.id) is None
    assert claim(store, plain) == Claim(ClaimOutcome.UNKNOWN)
    unknown = store.claim_job(question.id + 1000, lease_seconds=LEASE, max_attempts=3)
    assert unknown == Claim(ClaimOutcome.UNKNOWN)


def test_a_claimed_job_is_finished_once_with_its_answer(store: Store) -> None:
    question = ask(store)

    claimed = claim(store, question)
    assert claimed.outcome is ClaimOutcome.CLAIMED
    assert claimed.token
    assert claimed.job is not None
    assert claimed.job.status is JobStatus.RUNNING
    assert claimed.job.attempts == 1
    assert claimed.job.lease_until is not None
    assert abs(claimed.job.lease_until - (utcnow() + timedelta(seconds=LEASE))) < timedelta(
        seconds=5
    )
    assert store.job(question.id) == claimed.job

    made = report(question.id)
    answer = store.finish_job(question.id, claimed.token, "hello", model_version="v7", context=made)
    assert answer is not None
    assert (answer.role, answer.text, answer.user) == (Role.ASSISTANT, "hello", None)
    assert (answer.model_version, answer.context) == ("v7", made)
    assert store.history(KEY, 10) == [question, answer]
    assert store.answer(answer.id) == Answer(message=answer, conversation=KEY)

    done = store.job(question.id)
    assert done is not None
    assert (done.status, done.answer_id, done.attempts) == (JobStatus.DONE, answer.id, 1)
    assert (done.lease_until, done.error) == (None, None)
    assert done.updated_at >= claimed.job.updated_at
    assert claim(store, question) == Claim(ClaimOutcome.DONE, done)
    # Ended: a second finish or fail is refused and stores nothing.
    assert finish(store, question, claimed.token, "again") is None
    assert store.fail_job(question.id, "too late", token=claimed.token) is False
    assert store.fail_job(question.id, "too late") is False
    assert store.history(KEY, 10) == [question, answer]
    assert store.job(question.id) == done


def test_a_second_claim_while_the_lease_lasts_is_busy(store: Store) -> None:
    question = ask(store)
    first = claim(store, question)

    second = claim(store, question)
    assert second == Claim(ClaimOutcome.BUSY, first.job)
    assert second.token is None
    assert store.job(question.id) == first.job  # a refused claim counts no attempt


def test_after_the_lease_expires_a_new_claim_wins_and_the_old_token_is_refused(
    store: Store,
) -> None:
    question = ask(store)
    old = claim(store, question, lease=SHORT_LEASE)
    time.sleep(EXPIRE)

    new = claim(store, question)
    assert new.outcome is ClaimOutcome.CLAIMED
    assert new.token not in (None, old.token)
    assert new.job is not None
    assert (new.job.status, new.job.attempts) == (JobStatus.RUNNING, 2)

    assert old.token is not None
    assert finish(store, question, old.token, "slow answer") is None
    assert store.fail_job(question.id, "slow", token=old.token) is False
    assert store.history(KEY, 10) == [question]
    assert store.job(question.id) == new.job

    assert new.token is not None
    answer = finish(store, question, new.token, "fresh answer")
    assert answer is not None
    assert answers(store) == [answer]
    assert answer.text == "fresh answer"


def test_an_expired_lease_that_nobody_took_over_still_holds_the_job(store: Store) -> None:
    question = ask(store)
    claimed = claim(store, question, lease=SHORT_LEASE)
    time.sleep(EXPIRE)

    assert claimed.token is not None
    answer = finish(store, question, claimed.token, "late but first")
    assert answer is not None
    assert answers(store) == [answer]
    job = store.job(question.id)
    assert job is not None
    assert (job.status, job.answer_id) == (JobStatus.DONE, answer.id)


def test_of_concurrent_finishes_with_one_token_exactly_one_stores_its_answer(
    store: Store,
) -> None:
    question = ask(store)
    claimed = claim(store, question)
    assert claimed.token is not None
    threads = 8

    def work(n: int) -> StoredMessage | None:
        return finish(store, question, claimed.token or "", f"answer {n}")

    results = together(threads, work)
    won = [answer for answer in results.values() if answer is not None]
    assert len(results) == threads
    assert len(won) == 1
    assert answers(store) == won
    job = store.job(question.id)
    assert job is not None
    assert (job.status, job.answer_id) == (JobStatus.DONE, won[0].id)


def test_of_concurrent_claims_exactly_one_holds_the_job(store: Store) -> None:
    question = ask(store)
    threads = 8

    claims = together(threads, lambda _n: claim(store, question))
    outcomes = sorted(c.outcome for c in claims.values())
    assert outcomes == sorted([ClaimOutcome.CLAIMED] + [ClaimOutcome.BUSY] * (threads - 1))
    (winner,) = (c for c in claims.values() if c.outcome is ClaimOutcome.CLAIMED)
    assert winner.job is not None
    assert winner.job.attempts == 1
    assert store.job(question.id) == winner.job


# ---- Order within a conversation -------------------------------------------------------------


def test_a_later_message_waits_until_the_earlier_one_is_answered(store: Store) -> None:
    first = ask(store, "first")
    second = ask(store, "second", user=BOB)
    elsewhere = ask(store, "elsewhere", key=OTHER)
    assert store.next_job(KEY) == first.id
    assert store.next_job(OTHER) == elsewhere.id
    assert store.next_job(THIRD) is None

    waiting = claim(store, second)
    assert waiting.outcome is ClaimOutcome.WAIT
    assert waiting.job == store.job(second.id)
    assert waiting.job is not None
    assert (waiting.job.status, waiting.job.attempts) == (JobStatus.QUEUED, 0)
    assert claim(store, elsewhere).outcome is ClaimOutcome.CLAIMED  # its own conversation

    running = claim(store, first)
    assert running.outcome is ClaimOutcome.CLAIMED
    assert claim(store, second).outcome is ClaimOutcome.WAIT  # first is running, not ended
    assert store.next_job(KEY) == first.id

    assert running.token is not None
    first_answer = finish(store, first, running.token, "to the first")
    assert store.next_job(KEY) == second.id
    taken = claim(store, second)
    assert taken.outcome is ClaimOutcome.CLAIMED
    assert taken.token is not None
    second_answer = finish(store, second, taken.token, "to the second")
    assert store.next_job(KEY) is None
    assert store.history(KEY, 10) == [first, second, first_answer, second_answer]


def test_a_failed_earlier_job_lets_the_next_one_run(store: Store) -> None:
    first = ask(store, "first")
    second = ask(store, "second")

    assert store.fail_job(first.id, "model unavailable") is True
    assert store.next_job(KEY) == second.id
    assert claim(store, second).outcome is ClaimOutcome.CLAIMED


def test_history_before_puts_each_answer_after_its_question(store: Store) -> None:
    # Three messages arrive before any answer: answers land after all of them in id order.
    first, second, third = ask(store, "one"), ask(store, "two"), ask(store, "three")
    for message in (first, second):
        held = claim(store, message)
        assert held.token is not None
        store.finish_job(
            message.id, held.token, f"answer to {message.text}", model_version="m", context=None
        )

    texts = [t.text for t in store.history_before(third.id, 10)]
    assert texts == ["one", "answer to one", "two", "answer to two"]
    assert [t.text for t in store.history_before(second.id, 10)] == ["one", "answer to one"]
    assert [t.text for t in store.history_before(second.id, 1)] == ["answer to one"]
    assert store.history_before(first.id, 10) == []
    assert [t.text for t in store.history(KEY, 10)][-2:] == ["answer to one", "answer to two"]


def test_history_before_starts_after_a_reset_and_stays_in_its_conversation(
    store: Store,
) -> None:
    ask(store, "old")
    store.reset(KEY)
    ask(store, "elsewhere", key=OTHER, user=CAROL)
    kept = ask(store, "kept")
    current = ask(store, "now")

    assert [t.text for t in store.history_before(current.id, 10)] == ["kept"]
    assert store.message(kept.id) == kept
    assert store.message(10_000) is None
