"""/explain in the scaled deployment: the attributions are made on a real Celery ``explain``
worker (started as the Procfile starts it, on a Redis of the test's own), and equal the
embedded deployment's for the same answer; without a worker, the text part and a note."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from config.wiring import build_embedded, build_web
from core.explanation import Explanation
from core.memory import MemoryStore
from core.types import ChatTurn, ContextReport, ConversationKey, Message, Role, Segment, UserRef
from tests.model_fixtures import MODEL_CACHE, REPO
from tests.test_scaled import Processes, RedisServer
from workers.remote_explain import GONE, NO_WORKER, ExplainWorker, QueuedExplainer

PNG = b"\x89PNG\r\n\x1a\n"
ADA = UserRef("telegram", "7", "Ada")


def _message(text: str) -> Message:
    return Message(platform="telegram", chat="7", user=ADA, text=text)


def _without_timing(text: str) -> str:
    """The reply without the seconds the ablation took (the only part that may differ)."""
    return re.sub(r"(ablation over \d+ parts), [\d.]+ s\)", r"\1)", text)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()


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
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env.update(settings.environment())
    env["PYTHONPATH"] = str(REPO)
    running = Processes(env, tmp_path)
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
    finally:
        web.close()

    assert "What drove my last answer most" in local.text
    assert "profile:" in local.text
    assert "I read your message as" in local.text
    assert _without_timing(scaled.text) == _without_timing(local.text)
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


def test_the_worker_explains_by_id_and_the_explanation_survives_json() -> None:
    store = MemoryStore()
    key = ConversationKey("telegram", None, "7")
    report = ContextReport(
        turns=(ChatTurn(Role.USER, "hi"),), segments=(), prompt_tokens=1, budget_tokens=9
    )
    answer = store.append(key, Role.ASSISTANT, "Hi!", context=report)
    bare = store.append(key, Role.ASSISTANT, "No context.")
    worker = ExplainWorker(store=store, explainer=_Stub())
    data = worker.explain(answer.id)
    assert data is not None
    assert Explanation.from_json(data) == _Stub().explain(None)
    assert worker.explain(bare.id) is None
    assert worker.explain(10_000) is None

    gone = QueuedExplainer(lambda answer_id, wait: None, 5)
    assert gone.explain(answer).lines == (GONE,)

    def no_worker(answer_id: int, wait: float) -> None:
        raise TimeoutError("The operation timed out.")

    assert QueuedExplainer(no_worker, 5).explain(answer).lines == (NO_WORKER.format(wait=5),)
