"""Answer jobs in SQL: the tables' own rules, and workers racing across processes.

Tests taking ``database_url`` run on a SQLite file and on a fresh PostgreSQL database.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import threading
import time
from concurrent.futures import ProcessPoolExecutor

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import IntegrityError

from core.db import SqlStore, create_engine_for
from core.db.engine import WRITE
from core.db.models import AnswerJobRow, ConversationRow, MessageRow
from core.jobs import ClaimOutcome, JobStatus
from core.types import (
    ConversationKey,
    Role,
    utcnow,
)
from tests.job_fixtures import (
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
