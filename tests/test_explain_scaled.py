"""/explain in the scaled deployment: the attributions are made on a real Celery ``explain``
worker (started as the Procfile starts it, on a Redis of the test's own), and equal the
embedded deployment's for the same answer; without a worker, the text part and a note."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from config.settings import Settings
from config.wiring import build_embedded, build_web
from core.explanation import Explanation
from core.memory import MemoryStore
from core.types import ChatTurn, ContextReport, ConversationKey, Message, Role, Segment, UserRef
from tests.model_fixtures import MODEL_CACHE
from tests.process_fixtures import Processes, RedisServer, process_environment, redis_server
from workers.remote_explain import (
    FAILED,
    GONE,
    KEY_PREFIX,
    NO_WORKER,
    ExplainWorker,
    QueuedExplainer,
    serve_explanation,
)

__all__ = ["redis_server"]

PNG = b"\x89PNG\r\n\x1a\n"
ADA = UserRef("telegram", "7", "Ada")


def _message(text: str) -> Message:
    return Message(platform="telegram", chat="7", user=ADA, text=text)


def _without_timing(text: str) -> str:
    """The reply without the seconds the ablation took (the only part that may differ)."""
    return re.sub(r"(ablation over \d+ parts), [\d.]+ s\)", r"\1)", text)


@pytest.fixture
def values(redis_server: RedisServer, postgres_url: str, tmp_path: Path) -> dict[str, Any]:
    """The settings of both deployments, on the test's database and Redis."""
    return {
        "deployment": "scaled",
        "database_url": postgres_url,
        "redis_url": redis_server.url,
        "data_dir": tmp_path / "data",
        "model_cache_dir": MODEL_CACHE,
        "temperature": 0.0,
        "max_new_tokens": 12,
        "sentiment": True,
        "explain_wait_s": 120,
        "_env_file": None,
    }


@pytest.fixture
def settings(values: dict[str, Any]) -> Settings:
    return Settings(**values)


@pytest.fixture
def processes(settings: Settings, tmp_path: Path) -> Iterator[Processes]:
    running = Processes(process_environment(settings), tmp_path)
    yield running
    running.stop_all()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(600)
async def test_explain_on_a_worker_equals_the_embedded_explain(
    settings: Settings, values: dict[str, Any], processes: Processes
) -> None:
    # The embedded deployment answers, then explains, on the test's database.
    embedded = build_embedded(Settings(**{**values, "deployment": "embedded"}))
    try:
        fact = _message("/profile fact My favourite colour is teal")
        await embedded.service.handle(fact).collect()
        answer = await embedded.service.handle(_message("What is my favourite colour?")).collect()
        assert answer.answer_id is not None
        local = await embedded.service.handle(_message("/explain")).collect()
    finally:
        embedded.close()

    # The explain worker, as the Procfile starts it; the scaled web process loads no model.
    processes.start(
        "explain",
        "worker",
        "-Q",
        "explain",
        "-P",
        "threads",
        "-c",
        "1",
        "-n",
        "explain@%h",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "INFO",
    )
    processes.wait_for("explain", "ready.", within=300)
    web = build_web(settings)
    try:
        assert web.model is None
        scaled = await web.service.handle(_message("/explain")).collect()
        # Two at once, each in a thread of the web process: each gets its own result.
        both = await asyncio.gather(
            *(web.service.handle(_message("/explain")).collect() for _ in range(2))
        )
    finally:
        web.close()

    assert "What drove my last answer most" in local.text
    assert "profile:" in local.text
    assert "I read your message as" in local.text
    assert _without_timing(scaled.text) == _without_timing(local.text)
    assert [_without_timing(r.text) for r in both] == [_without_timing(local.text)] * 2
    assert [name for name, _ in scaled.attachments] == ["explain.png", "mood.png"]
    assert [name for name, _ in local.attachments] == ["explain.png", "mood.png"]
    assert all(picture.startswith(PNG) for _, picture in scaled.attachments)
    assert "parley.explain" in (processes.logs / "explain.log").read_text()


@pytest.mark.postgres
async def test_without_an_explain_worker_explain_shows_the_prompt_and_says_why(
    values: dict[str, Any],
) -> None:
    web = build_web(Settings(**{**values, "explain_wait_s": 1.0}))
    try:
        key = _message("hi").key
        web.store.append(key, Role.USER, "Hello there", user=ADA)
        report = ContextReport(
            turns=(ChatTurn(Role.SYSTEM, "Be brief."), ChatTurn(Role.USER, "Hello there")),
            segments=(Segment(kind="message", label="user: Hello there", tokens=3),),
            prompt_tokens=9,
            budget_tokens=100,
        )
        web.store.append(key, Role.ASSISTANT, "Hi!", model_version="v1", context=report)
        reply = await web.service.handle(_message("/explain")).collect()
    finally:
        web.close()
    note = NO_WORKER.format(wait=1.0)
    assert reply.text.startswith(note)
    assert "used 9 of 100 prompt tokens" in reply.text
    assert reply.attachments == ()


# ------------------------------------------------------------------- the parts alone


class _Stub:
    def explain(self, answer: object) -> Explanation:
        return Explanation(("one", "two"), PNG + b"a", (("mood.png", PNG + b"b"),))


class _Broken:
    def explain(self, answer: object) -> Explanation:
        raise RuntimeError("the model fell over")


def test_the_worker_explains_by_id_and_the_web_side_reads_it_back(
    redis_client: redis.Redis,
) -> None:
    store = MemoryStore()
    key = ConversationKey("telegram", None, "7")
    report = ContextReport(
        turns=(ChatTurn(Role.USER, "hi"),), segments=(), prompt_tokens=1, budget_tokens=9
    )
    answer = store.append(key, Role.ASSISTANT, "Hi!", context=report)
    bare = store.append(key, Role.ASSISTANT, "No context.")
    worker = ExplainWorker(store=store, explainer=_Stub())
    assert worker.explain(bare.id) is None
    assert worker.explain(10_000) is None

    def served_by(explaining: ExplainWorker) -> Callable[[int, str, float], None]:
        """An enqueue that runs the task's work at once, as a worker would."""

        def enqueue(answer_id: int, key: str, expires: float) -> None:
            serve_explanation(redis_client, explaining, answer_id, key, result_ttl=expires)

        return enqueue

    def web(enqueue: Callable[[int, str, float], None]) -> QueuedExplainer:
        return QueuedExplainer(redis=redis_client, enqueue=enqueue, wait_seconds=1)

    assert web(served_by(worker)).explain(answer) == _Stub().explain(None)
    assert web(served_by(worker)).explain(bare).lines == (GONE,)
    broken = ExplainWorker(store=store, explainer=_Broken())
    assert web(served_by(broken)).explain(answer).lines == (FAILED,)
    assert web(lambda *_: None).explain(answer).lines == (NO_WORKER.format(wait=1),)
    assert not redis_client.keys(f"{KEY_PREFIX}*")  # every result taken or expiring


def test_a_result_longer_than_a_redis_socket_timeout_is_still_waited_for(
    redis_client: redis.Redis,
) -> None:
    # redis-py gives up reading a socket after 5 s; an attribution on a busy CPU takes longer.
    store = MemoryStore()
    report = ContextReport(
        turns=(ChatTurn(Role.USER, "hi"),), segments=(), prompt_tokens=1, budget_tokens=9
    )
    answer = store.append(
        ConversationKey("telegram", None, "7"), Role.ASSISTANT, "Hi!", context=report
    )
    worker = ExplainWorker(store=store, explainer=_Stub())

    def later(answer_id: int, key: str, expires: float) -> None:
        serve = lambda: serve_explanation(redis_client, worker, answer_id, key, result_ttl=expires)  # noqa: E731
        threading.Timer(6.0, serve).start()

    explainer = QueuedExplainer(redis=redis_client, enqueue=later, wait_seconds=20)
    assert explainer.explain(answer) == _Stub().explain(None)
