"""Answer jobs: attempts and failures, the reconciler's stalled jobs, and forgetting.

Tests taking ``store`` run on every backend (see tests/test_jobs.py).
"""

from __future__ import annotations

import time
from datetime import timedelta

from core.jobs import Claim, ClaimOutcome, JobStatus
from core.store import Store
from core.types import (
    ConversationKey,
    utcnow,
)
from tests.job_fixtures import (
    ANN,
    BOB,
    CAROL,
    EXPIRE,
    KEY,
    OTHER,
    SHORT_LEASE,
    THIRD,
    answers,
    ask,
    claim,
    finish,
)

# ---- Attempts and failures -------------------------------------------------------------------


def test_every_claim_counts_an_attempt_and_a_spent_job_is_set_aside(store: Store) -> None:
    poisoned = ask(store, "poisoned")
    after = ask(store, "after it")
    for attempt in (1, 2):
        claimed = claim(store, poisoned, lease=SHORT_LEASE, max_attempts=2)
        assert claimed.outcome is ClaimOutcome.CLAIMED
        assert claimed.job is not None
        assert claimed.job.attempts == attempt
        time.sleep(EXPIRE)  # the worker died: its lease runs out

    set_aside = claim(store, poisoned, max_attempts=2)
    assert set_aside.outcome is ClaimOutcome.SET_ASIDE
    assert set_aside.token is None
    assert set_aside.job is not None
    assert set_aside.job.status is JobStatus.FAILED
    assert set_aside.job.error == "set aside after 2 attempts"
    assert set_aside.job.attempts == 2
    assert set_aside.job.lease_until is None
    assert store.job(poisoned.id) == set_aside.job
    assert claim(store, poisoned, max_attempts=5) == Claim(ClaimOutcome.FAILED, set_aside.job)
    assert store.next_job(KEY) == after.id
    assert claim(store, after, max_attempts=2).outcome is ClaimOutcome.CLAIMED
    assert answers(store) == []


def test_a_queued_job_that_may_not_run_at_all_is_set_aside_at_once(store: Store) -> None:
    question = ask(store)

    set_aside = claim(store, question, max_attempts=0)
    assert set_aside.outcome is ClaimOutcome.SET_ASIDE
    assert set_aside.job is not None
    assert (set_aside.job.error, set_aside.job.attempts) == ("set aside after 0 attempts", 0)


def test_fail_job_with_its_token_only_while_that_token_holds_it(store: Store) -> None:
    question = ask(store)
    claimed = claim(store, question)
    assert claimed.token is not None

    assert store.fail_job(question.id, "wrong runner", token="not-the-token") is False
    assert store.job(question.id) == claimed.job
    assert store.fail_job(question.id, "generation failed", token=claimed.token) is True
    job = store.job(question.id)
    assert job is not None
    assert (job.status, job.error, job.answer_id) == (JobStatus.FAILED, "generation failed", None)
    assert job.lease_until is None
    assert claim(store, question) == Claim(ClaimOutcome.FAILED, job)
    assert store.fail_job(question.id, "again", token=claimed.token) is False
    assert store.fail_job(question.id, "again") is False
    assert finish(store, question, claimed.token, "too late") is None
    assert store.job(question.id) == job
    assert answers(store) == []


def test_fail_job_without_a_token_ends_any_job_that_has_not_ended(store: Store) -> None:
    queued = ask(store, "queued")
    running = ask(store, "running", key=OTHER)
    claimed = claim(store, running)

    assert store.fail_job(queued.id, "gave up waiting") is True
    assert store.fail_job(running.id, "operator") is True
    assert store.fail_job(queued.id + 1000, "unknown") is False
    for message, reason in ((queued, "gave up waiting"), (running, "operator")):
        job = store.job(message.id)
        assert job is not None
        assert (job.status, job.error) == (JobStatus.FAILED, reason)
    assert claimed.token is not None
    assert finish(store, running, claimed.token, "too late") is None
    assert answers(store, OTHER) == []


def test_a_finished_job_cannot_be_failed_by_its_own_token(store: Store) -> None:
    question = ask(store)
    claimed = claim(store, question)
    assert claimed.token is not None
    answer = finish(store, question, claimed.token, "done")
    assert answer is not None

    assert store.fail_job(question.id, "late failure", token=claimed.token) is False
    job = store.job(question.id)
    assert job is not None
    assert (job.status, job.answer_id, job.error) == (JobStatus.DONE, answer.id, None)


# ---- The reconciler: stalled jobs ------------------------------------------------------------


def test_stalled_jobs_are_the_heads_of_conversations_that_show_no_life(store: Store) -> None:
    head = ask(store, "queued head")
    behind = ask(store, "queued behind the head")
    expired = ask(store, "its worker died", key=OTHER)
    alive = ask(store, "being answered", key=THIRD)
    claim(store, expired, lease=SHORT_LEASE)
    claim(store, alive)
    time.sleep(0.01)
    cutoff = utcnow()
    time.sleep(0.01)
    recent = ask(store, "just queued", key=ConversationKey("slack", "T1", "C9", None))
    time.sleep(EXPIRE)

    assert store.stalled_jobs(cutoff) == [head.id, expired.id]
    assert store.stalled_jobs(cutoff, limit=1) == [head.id]
    assert store.stalled_jobs(cutoff - timedelta(hours=1)) == [expired.id]
    assert store.stalled_jobs(utcnow()) == [head.id, expired.id, recent.id]

    store.touch_job(head.id)  # queued again now: the reconciler waits before the next time
    assert store.stalled_jobs(cutoff) == [expired.id]
    touched = store.job(head.id)
    assert touched is not None
    assert touched.updated_at > cutoff
    assert touched.status is JobStatus.QUEUED
    assert store.stalled_jobs(utcnow()) == [head.id, expired.id, recent.id]

    store.fail_job(head.id, "given up")
    assert store.stalled_jobs(utcnow()) == [behind.id, expired.id, recent.id]
    assert store.stalled_jobs(utcnow(), limit=0) == []


def test_touch_job_leaves_ended_and_unknown_jobs_alone(store: Store) -> None:
    question = ask(store)
    store.fail_job(question.id, "gone")
    ended = store.job(question.id)

    store.touch_job(question.id)
    store.touch_job(question.id + 1000)
    assert store.job(question.id) == ended
    assert store.job(question.id + 1000) is None


# ---- Forgetting ------------------------------------------------------------------------------


def test_forget_removes_the_persons_jobs_and_keeps_the_others(store: Store) -> None:
    private = ConversationKey("telegram", None, "42", None)
    carols = ask(store, "private", key=private, user=CAROL)
    claimed = claim(store, carols)
    anns = ask(store, "Ann first", user=ANN)
    bobs = ask(store, "Bob second", user=BOB)
    assert claim(store, bobs).outcome is ClaimOutcome.WAIT

    assert store.forget(CAROL) == 1 + 1 + 1  # message, conversation, person: jobs not counted
    assert store.job(carols.id) is None
    assert claim(store, carols) == Claim(ClaimOutcome.UNKNOWN)
    assert claimed.token is not None
    assert finish(store, carols, claimed.token, "to nobody") is None
    assert store.history(private, 10) == []
    assert store.next_job(private) is None

    assert store.forget(ANN) == 1 + 1  # the message and the person; the chat is shared
    assert store.job(anns.id) is None
    assert store.next_job(KEY) == bobs.id
    assert store.stalled_jobs(utcnow()) == [bobs.id]
    taken = claim(store, bobs)
    assert taken.outcome is ClaimOutcome.CLAIMED
    assert taken.token is not None
    answer = finish(store, bobs, taken.token, "for Bob")
    assert answer is not None
    assert store.history(KEY, 10) == [bobs, answer]
