"""Answer jobs (core/jobs.py): the contract on every store, and races across processes.

Tests taking ``store`` run on MemoryStore, SqlStore on a SQLite file and SqlStore on a
fresh PostgreSQL database (``-m postgres`` selects those). Tests taking ``database_url``
are about the SQL tables themselves, and about several processes sharing one database.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import IntegrityError

from core.db import SqlStore, create_engine_for
from core.db.engine import WRITE
from core.db.models import AnswerJobRow, ConversationRow, MessageRow
from core.jobs import Claim, ClaimOutcome, Job, JobStatus
from core.store import Store
from core.types import (
    Answer,
    ChatTurn,
    ContextReport,
    ConversationKey,
    Role,
    Segment,
    StoredMessage,
    UserRef,
    utcnow,
)

KEY = ConversationKey("slack", "T1", "C1", None)
OTHER = ConversationKey("telegram", None, "-100200", None)
THIRD = ConversationKey("telegram", None, "-100300", "7")
ANN = UserRef("slack", "U1", "Ann")
BOB = UserRef("slack", "U2", "Bob")
CAROL = UserRef("telegram", "42", "Carol")
LEASE = 60.0
MAX_ATTEMPTS = 3
SHORT_LEASE = 0.05
EXPIRE = 0.15  # sleep this long for a SHORT_LEASE to run out


def ask(
    store: Store, text: str = "question", *, key: ConversationKey = KEY, user: UserRef = ANN
) -> StoredMessage:
    """Store a person's message that expects an answer (which opens its job)."""
    return store.append(key, Role.USER, text, user=user, expects_answer=True)


def claim(
    store: Store, message: StoredMessage, lease: float = LEASE, max_attempts: int = MAX_ATTEMPTS
) -> Claim:
    """Claim the job of ``message``."""
    return store.claim_job(message.id, lease_seconds=lease, max_attempts=max_attempts)


def finish(store: Store, message: StoredMessage, token: str, text: str) -> StoredMessage | None:
    """Finish the job of ``message`` with the answer ``text``."""
    return store.finish_job(message.id, token, text, model_version="v1", context=None)


def report(message_id: int) -> ContextReport:
    """A context report that names the question it was built for."""
    return ContextReport(
        turns=(ChatTurn(Role.SYSTEM, "Be brief."), ChatTurn(Role.USER, "Ann: hi")),
        segments=(Segment(kind="turn", label="Ann", tokens=4, message_id=message_id),),
        prompt_tokens=7,
        budget_tokens=512,
    )


def answers(store: Store, key: ConversationKey = KEY) -> list[StoredMessage]:
    """The assistant turns of the conversation."""
    return [t for t in store.history(key, 1000) if t.role is Role.ASSISTANT]


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
    start = threading.Barrier(threads)
    results: dict[int, StoredMessage | None] = {}
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            start.wait()
            results[n] = finish(store, question, claimed.token or "", f"answer {n}")
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert errors == []
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
    start = threading.Barrier(threads)
    claims: dict[int, Claim] = {}
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            start.wait()
            claims[n] = claim(store, question)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert errors == []
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


# ---- The SQL tables --------------------------------------------------------------------------


def test_one_message_can_answer_only_one_job(database_url: str) -> None:
    engine = create_engine_for(database_url)
    store = SqlStore(engine)
    first, second = ask(store, "first"), ask(store, "second")
    claimed = claim(store, first)
    assert claimed.token is not None
    answer = finish(store, first, claimed.token, "the answer")
    assert answer is not None

    with pytest.raises(IntegrityError), engine.execution_options(**WRITE).begin() as connection:
        connection.execute(
            update(AnswerJobRow)
            .where(AnswerJobRow.message_id == second.id)
            .values(answer_id=answer.id)
        )
    with pytest.raises(IntegrityError), engine.execution_options(**WRITE).begin() as connection:
        connection.execute(
            update(AnswerJobRow).where(AnswerJobRow.message_id == second.id).values(status="lost")
        )
    assert store.job(second.id) is not None
    engine.dispose()


def test_jobs_go_with_their_message_and_lose_a_deleted_answer(database_url: str) -> None:
    engine = create_engine_for(database_url)
    store = SqlStore(engine)
    question, later = ask(store, "question"), ask(store, "later", key=OTHER)
    claimed = claim(store, question)
    assert claimed.token is not None
    answer = finish(store, question, claimed.token, "answer")
    assert answer is not None

    with engine.execution_options(**WRITE).begin() as connection:
        connection.execute(delete(MessageRow).where(MessageRow.id == answer.id))
    job = store.job(question.id)
    assert job is not None
    assert (job.status, job.answer_id) == (JobStatus.DONE, None)

    with engine.execution_options(**WRITE).begin() as connection:
        connection.execute(delete(MessageRow).where(MessageRow.id == question.id))
        connection.execute(delete(ConversationRow).where(ConversationRow.key == OTHER.encode()))
        left = connection.execute(select(AnswerJobRow.message_id)).scalars().all()
    assert left == []
    assert store.job(later.id) is None
    engine.dispose()


@pytest.mark.postgres
def test_on_postgresql_job_steps_of_one_conversation_take_turns(postgres_url: str) -> None:
    engine = create_engine_for(postgres_url)
    store = SqlStore(engine)
    question = ask(store)
    results: list[object] = []

    def claim_and_ask_again() -> None:
        results.append(claim(store, question).outcome)
        results.append(ask(store, "queued meanwhile").id)

    with engine.connect() as holder, holder.begin():
        # Another runner in the middle of a step: it holds the conversation's row.
        holder.execute(
            text("SELECT id FROM conversations WHERE key = :key FOR NO KEY UPDATE"),
            {"key": KEY.encode()},
        )
        stepping = threading.Thread(target=claim_and_ask_again)
        stepping.start()
        # A plain message is stored meanwhile: the lock leaves inserts into the chat free.
        plain = store.append(KEY, Role.USER, "just chatting", user=BOB)
        stepping.join(timeout=0.5)
        assert stepping.is_alive()
        assert results == []
    stepping.join(timeout=10)

    assert results[0] is ClaimOutcome.CLAIMED
    assert store.history(KEY, 10)[:2] == [question, plain]
    assert store.next_job(KEY) == question.id
    engine.dispose()


@pytest.mark.postgres
def test_on_postgresql_forget_waits_for_a_step_in_progress_and_never_deadlocks(
    postgres_url: str,
) -> None:
    engine = create_engine_for(postgres_url)
    store = SqlStore(engine)
    private = ConversationKey("telegram", None, "42", None)
    question = ask(store, "private", key=private, user=CAROL)
    forgotten: list[int] = []

    with engine.connect() as holder, holder.begin():
        # A claim in progress: it has locked the conversation and is about to take the job.
        holder.execute(
            text("SELECT id FROM conversations WHERE key = :key FOR NO KEY UPDATE"),
            {"key": private.encode()},
        )
        forgetting = threading.Thread(target=lambda: forgotten.append(store.forget(CAROL)))
        forgetting.start()
        forgetting.join(timeout=0.5)
        assert forgetting.is_alive()
        taken = holder.execute(
            update(AnswerJobRow)
            .where(AnswerJobRow.message_id == question.id)
            .values(status="running", attempts=1)
        )
        assert taken.rowcount == 1
    forgetting.join(timeout=10)

    assert forgotten == [3]  # message, conversation, person
    assert store.job(question.id) is None
    assert store.history(private, 10) == []
    engine.dispose()


# ---- Races across processes ------------------------------------------------------------------

RACERS = 4


def race(url: str, ids: list[int], start_at: float) -> list[tuple[int, int | None, str]]:
    """One worker process: answer every job in ``ids``, racing the others.

    Leases are short and a worker often dawdles past its lease before finishing (always
    after its first claim), so jobs are taken over and stale tokens finish late. With more
    workers than conversations one of them is free to take over. Returns each finish it
    tried: the job, the stored answer's id (``None``: refused) and the text it offered.
    """
    engine = create_engine_for(url)
    store = SqlStore(engine)
    pending = list(ids)
    tried: list[tuple[int, int | None, str]] = []
    deadline = time.monotonic() + 60
    time.sleep(max(0.0, start_at - time.time()))
    try:
        while pending and time.monotonic() < deadline:
            for message_id in list(pending):
                got = store.claim_job(message_id, lease_seconds=SHORT_LEASE, max_attempts=1000)
                if got.outcome is ClaimOutcome.CLAIMED:
                    assert got.token is not None
                    first = not tried
                    time.sleep(EXPIRE if first else random.uniform(0, 2 * SHORT_LEASE))
                    offered = f"answer to {message_id} from {os.getpid()} ({got.token})"
                    stored = store.finish_job(
                        message_id, got.token, offered, model_version="v1", context=None
                    )
                    tried.append((message_id, stored.id if stored else None, offered))
                elif got.outcome in (ClaimOutcome.DONE, ClaimOutcome.FAILED):
                    pending.remove(message_id)
            time.sleep(0.002)
    finally:
        engine.dispose()
    return tried


def test_workers_in_several_processes_answer_each_job_once_and_in_order(
    database_url: str,
) -> None:
    engine = create_engine_for(database_url)
    store = SqlStore(engine)
    keys = (KEY, OTHER, THIRD)
    questions = {key: [ask(store, f"{key.chat} {i}", key=key) for i in range(4)] for key in keys}
    ids = sorted(q.id for qs in questions.values() for q in qs)

    spawn = multiprocessing.get_context("spawn")
    start_at = time.time() + 3  # every process started and connected
    with ProcessPoolExecutor(RACERS, mp_context=spawn) as pool:
        runs = [pool.submit(race, database_url, ids, start_at) for _ in range(RACERS)]
        tried = [attempt for run in runs for attempt in run.result(timeout=120)]

    won = {message_id: (answer, offered) for message_id, answer, offered in tried if answer}
    assert sorted(won) == ids  # every job answered ...
    assert len([t for t in tried if t[1] is not None]) == len(ids)  # ... by one finish only
    assert any(answer is None for _, answer, _ in tried)  # and late finishes were refused
    for key, asked in questions.items():
        stored = answers(store, key)
        # One answer per question, the winner's, stored in the order of the questions.
        assert [(a.id, a.text) for a in stored] == [won[q.id] for q in asked]
        assert store.history(key, 100) == [*asked, *stored]
        for question, answer in zip(asked, stored, strict=True):
            job = store.job(question.id)
            assert job is not None
            assert (job.status, job.answer_id, job.error) == (JobStatus.DONE, answer.id, None)
            assert job.attempts >= 1
    assert store.stalled_jobs(utcnow()) == []
    engine.dispose()


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


def test_a_released_event_is_new_again(store: Store) -> None:
    assert store.claim_event("telegram", "7")
    assert not store.claim_event("telegram", "7")
    store.release_event("telegram", "7")
    assert store.claim_event("telegram", "7")
    store.release_event("telegram", "unknown")  # nothing to release: no error
