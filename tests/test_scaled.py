"""The scaled deployment for real: Celery worker processes, a Redis server, PostgreSQL.

Each test gets its own Redis server (so that one can be killed) and its own database; the
workers answer with the packaged model through ``tests.fakes.poison`` (the real model,
plus two poisons). The web side is the real conversation service of ``build_web``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.settings import Settings
from config.wiring import Parley, build_web
from core.conversation import Accepted
from core.jobs import JobStatus
from core.responder import SET_ASIDE
from core.types import ConversationKey, Message, Reply, ReplyKind, Role, UserRef
from tests.fakes.poison import KILL, RAISE
from tests.model_fixtures import MODEL_CACHE
from tests.process_fixtures import (  # the Redis server of each test
    Processes,
    RedisServer,
    process_environment,
    redis_server,
)
from workers.queues import celery_app

__all__ = ["redis_server"]

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(900)]


@pytest.fixture
def scaled(redis_server: RedisServer, postgres_url: str) -> Settings:
    return Settings(
        deployment="scaled",
        database_url=postgres_url,
        redis_url=redis_server.url,
        model_cache_dir=MODEL_CACHE,
        generator="tests.fakes.poison:build",
        temperature=0.0,
        max_new_tokens=12,
        sentiment=False,
        max_batch_size=32,
        task_time_limit_s=20,
        visibility_timeout_s=25,
        max_attempts=2,
        reconcile_after_s=6,
        reconcile_interval_s=2,
        answer_wait_s=240,
        # These tests accept a person's messages back to back before any is answered.
        one_answer_at_a_time=False,
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
def processes(scaled: Settings, tmp_path: Path) -> Iterator[Processes]:
    running = Processes(process_environment(scaled), tmp_path)
    yield running
    running.stop_all()


@pytest.fixture
def web(scaled: Settings) -> Iterator[Parley]:
    parley = build_web(scaled)  # with a Celery app of its own, on this test's Redis
    yield parley
    parley.close()


def _message(conversation: int, text: str, n: int) -> Message:
    return Message(
        platform="telegram",
        chat=f"chat-{conversation}",
        user=_user(conversation),
        text=text,
        message_id=f"{conversation}-{n}",
    )


def _user(conversation: int) -> UserRef:
    return UserRef("telegram", f"user-{conversation}", f"Person {conversation}")


def _answered_in_order(parley: Parley, accepted: list[Accepted], replies: list[Reply]) -> None:
    """Every message has exactly one answer, and each conversation's answers follow its order.

    Each conversation's turns, in answer order, alternate question and answer, questions
    as sent; its answers were made one after another (their ids grow in the order sent).
    """
    by_key: dict[ConversationKey, list[tuple[Accepted, Reply]]] = {}
    for taken, reply in zip(accepted, replies, strict=True):
        by_key.setdefault(taken.message.key, []).append((taken, reply))
    for key, pairs in by_key.items():
        answer_ids = [reply.answer_id for _, reply in pairs]
        assert all(answer_ids), key
        assert answer_ids == sorted(answer_ids), key
        for taken, reply in pairs:
            job = parley.store.job(taken.message_id or 0)
            assert job is not None
            assert (job.status, job.answer_id) == (JobStatus.DONE, reply.answer_id)
        last, last_reply = pairs[-1]
        turns = parley.store.history_before(last.message_id or 0, 100)
        roles = [t.role for t in turns] + [Role.USER, Role.ASSISTANT]
        assert roles == [Role.USER, Role.ASSISTANT] * len(pairs), key
        questions = [t.text for t in turns if t.role is Role.USER] + [last.message.text]
        assert questions == [taken.message.text for taken, _ in pairs], key
        answers = [t.id for t in turns if t.role is Role.ASSISTANT] + [last_reply.answer_id]
        assert answers == answer_ids, key


async def _accept_all(parley: Parley, messages: list[Message]) -> list[Accepted]:
    """Accept every message, as the web process does before it acknowledges the platform."""
    return [await parley.service.accept(m) for m in messages]


async def test_twenty_conversations_each_get_one_answer_in_order(
    web: Parley, processes: Processes
) -> None:
    processes.worker()
    messages = [
        _message(c, text, n)
        for c in range(20)
        for n, text in enumerate([f"What is {c} plus {c}?", "And times two?"])
    ]
    accepted = await _accept_all(web, messages)  # all stored before any is answered
    replies = await asyncio.gather(*(web.service.reply(a).collect() for a in accepted))

    assert [r.kind for r in replies] == [ReplyKind.ANSWER] * len(messages), replies
    assert len({r.answer_id for r in replies}) == len(messages)
    _answered_in_order(web, accepted, replies)
    # The second answer of each conversation was made with the first answer in its context.
    for first, second in zip(replies[0::2], replies[1::2], strict=True):
        answer = web.store.answer(second.answer_id or 0)
        assert answer is not None
        assert answer.message.context is not None
        assert first.text in [t.content for t in answer.message.context.turns]
    # The worker answered them together: its batching engine logs each new peak.
    log = (processes.logs / "w1.log").read_text()
    peaks = [int(n) for n in re.findall(r"a new peak of (\d+) answers at once", log)]
    assert peaks, log[-2000:]
    assert max(peaks) >= 8


async def test_a_worker_killed_mid_answer_leads_to_exactly_one_answer(
    web: Parley, processes: Processes
) -> None:
    processes.worker("w1")
    processes.beat()
    messages = [_message(c, f"Tell me about the number {c}.", 0) for c in range(6)]
    accepted = await _accept_all(web, messages)
    streams = [web.service.reply(a) for a in accepted]
    first = asyncio.ensure_future(streams[0].__anext__())
    await asyncio.wait_for(first, 120)  # text is flowing: the worker is mid-generation
    processes.kill("w1")
    processes.worker("w2")
    replies = [await asyncio.wait_for(s.collect(), 240) for s in streams]

    assert [r.kind for r in replies] == [ReplyKind.ANSWER] * len(messages)
    _answered_in_order(web, accepted, replies)


async def test_redis_killed_under_load_loses_no_message(
    web: Parley, processes: Processes, redis_server: RedisServer
) -> None:
    processes.worker()
    processes.beat()
    messages = [_message(c, f"Name a colour, number {c}.", 0) for c in range(8)]
    accepted = await _accept_all(web, messages)
    streams = [web.service.reply(a) for a in accepted]
    collecting = [asyncio.ensure_future(s.collect()) for s in streams]
    await asyncio.sleep(1.0)
    redis_server.kill()  # queued tasks, streams and results are gone with it
    await asyncio.sleep(3.0)
    redis_server.start()
    replies = await asyncio.wait_for(asyncio.gather(*collecting), 300)

    assert [r.kind for r in replies] == [ReplyKind.ANSWER] * len(messages)
    _answered_in_order(web, accepted, list(replies))


async def test_poisoned_messages_get_an_apology_and_block_nobody(
    web: Parley, processes: Processes
) -> None:
    processes.worker("w1")
    processes.beat()
    raising = _message(1, f"{RAISE} please", 0)
    killing = _message(2, f"{KILL} please", 0)
    after_kill = _message(2, "Are you there?", 1)
    healthy = [_message(c, f"Say hello to number {c}.", 0) for c in range(3, 7)]
    accepted = [await web.service.accept(m) for m in [raising, killing, after_kill, *healthy]]
    streams = [asyncio.ensure_future(web.service.reply(a).collect()) for a in accepted]

    # Whatever the killing message takes down is brought back, as a supervisor would.
    async def supervise() -> None:
        n = 1
        while True:
            await asyncio.sleep(0.5)
            if processes.running[f"w{n}"].poll() is not None:
                processes.running.pop(f"w{n}")
                n += 1
                await asyncio.to_thread(processes.worker, f"w{n}")

    supervisor = asyncio.ensure_future(supervise())
    try:
        replies = await asyncio.wait_for(asyncio.gather(*streams), 300)
    finally:
        supervisor.cancel()

    assert replies[0].kind is ReplyKind.ERROR
    assert "went wrong" in replies[0].text
    assert replies[1].kind is ReplyKind.ERROR
    assert replies[1].text == SET_ASIDE
    assert replies[2].kind is ReplyKind.ANSWER  # the poisoned message did not block its chat
    assert [r.kind for r in replies[3:]] == [ReplyKind.ANSWER] * len(healthy)
    job = web.store.job(accepted[1].message_id or 0)
    assert job is not None
    assert job.status is JobStatus.FAILED
    assert job.attempts == 2


def test_the_nightly_run_is_scheduled_and_runs_on_the_train_queue(
    processes: Processes, scaled: Settings, tmp_path: Path
) -> None:
    import json

    app = celery_app(scaled)
    nightly = app.conf.beat_schedule["nightly-fine-tune"]
    assert nightly["task"] == "parley.fine_tune"
    assert nightly["schedule"].hour == {3}
    assert app.conf.task_routes["parley.fine_tune"] == {"queue": "train"}
    adapters = tmp_path / "adapters"
    processes.env["PARLEY_ADAPTERS_DIR"] = str(adapters)
    processes.start(
        "trainer", "worker", "-Q", "train", "-c", "1", "-n", "train@%h",
        "--without-gossip", "--without-mingle", "--loglevel", "INFO",
    )  # fmt: skip
    processes.wait_for("trainer", "ready.")

    app.send_task("parley.fine_tune")

    runs = adapters / "runs.jsonl"
    deadline = time.monotonic() + 120
    while not runs.is_file() and time.monotonic() < deadline:
        time.sleep(0.2)
    processes.wait_for("trainer", "Fine-tuning skipped")
    [run] = [json.loads(line) for line in runs.read_text().splitlines()]
    assert run["status"] == "skipped"
    assert "0 new feedback items" in run["reason"]
    app.close()
