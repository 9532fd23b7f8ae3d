"""Real processes killed with SIGKILL: the person still gets exactly one complete answer.

The scaled deployment runs as the Procfile runs it, ``python -m bots.web`` (Telegram's
webhook) and a Celery ``generate`` worker, on PostgreSQL and a Redis server of the test's
own; the Telegram polling mode runs ``python -m bots.telegram`` on SQLite. Both answer with
``tests.outbox_fixtures:slow`` (a sentence streamed a word at a time) and talk to the fake
Telegram Bot API server in this process, which counts every message sent and edited.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from bots.telegram.adapter import SECRET_HEADER, WEBHOOK_PATH
from config.settings import Settings
from core.db import SqlStore, create_engine_for
from core.errors import StoreError
from core.jobs import Job
from core.types import ConversationKey, Role
from tests.fakes.telegram import ADA, FakeTelegram, private_message
from tests.model_fixtures import MODEL_CACHE
from tests.outbox_fixtures import ANSWER, LATE
from tests.process_fixtures import (
    Children,
    RedisServer,
    free_port,
    process_environment,
    redis_server,
)

__all__ = ["redis_server"]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SECRET = "outbox-secret"
LEASE_S = 3.0
CHAT = int(ADA["id"])
KEY = ConversationKey("telegram", None, str(CHAT), None)


class Running(Children):
    """Parley's processes, started as the Procfile and the README start them."""

    def __init__(self, settings: Settings, logs: Path) -> None:
        super().__init__(process_environment(settings), logs)

    def worker(self) -> None:
        argv = ["-m", "celery", "-A", "workers.celery_app", "worker", "-Q", "generate"]
        argv += ["-P", "threads", "-c", "4", "-n", "w1@%h", "--without-gossip"]
        self.launch("worker", *argv, "--without-mingle", "--loglevel", "INFO")

    async def until_logged(self, name: str, text: str, within: float = 120) -> None:
        """Wait until ``name`` logs ``text``, letting this loop's fake server answer meanwhile."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.logged(name, text):
                return
            await asyncio.sleep(0.2)
        raise self.silent(name, text)


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


def _settings(telegram: FakeTelegram, tmp_path: Path, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "model_cache_dir": MODEL_CACHE,
        "generator": "tests.outbox_fixtures:slow",
        "sentiment": False,
        "media": False,
        "delivery_lease_s": LEASE_S,
        "delivery_sweep_s": 0.5,
        "telegram_token": SecretStr(telegram.token),
        "telegram_api_url": telegram.api_url,
    }
    return Settings(_env_file=None, **{**values, **changes})  # type: ignore[call-arg]


class Scaled:
    """The scaled deployment: a generate worker, and web processes started one at a time."""

    def __init__(self, running: Running, port: int, database_url: str) -> None:
        self.running = running
        self.port = port
        self.database_url = database_url
        self.webs = 0

    async def start_web(self) -> str:
        """Start a web process; return its name once it serves."""
        self.webs += 1
        name = f"web{self.webs}"
        self.running.launch(name, "-m", "bots.web", "--port", str(self.port))
        await self.running.until_logged(name, "Application startup complete")
        return name

    async def send(self, text: str) -> None:
        """Telegram delivers a private message to the webhook; the web process takes it."""
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"http://127.0.0.1:{self.port}{WEBHOOK_PATH}",
                json=private_message(text),
                headers={SECRET_HEADER: SECRET},
            )
        assert response.status_code == 200


@pytest.fixture
def scaled(
    telegram: FakeTelegram, tmp_path: Path, postgres_url: str, redis_server: RedisServer
) -> Iterator[Scaled]:
    port = free_port()
    settings = _settings(
        telegram,
        tmp_path,
        deployment="scaled",
        database_url=postgres_url,
        redis_url=redis_server.url,
        task_time_limit_s=30,
        visibility_timeout_s=40,
        answer_wait_s=120,
        telegram_webhook_url=f"http://127.0.0.1:{port}{WEBHOOK_PATH}",
        telegram_webhook_secret=SecretStr(SECRET),
    )
    running = Running(settings, tmp_path)
    running.worker()
    yield Scaled(running, port, postgres_url)
    running.stop_all()


def _the_job(database_url: str) -> Job:
    """The job of the one message the person sent."""
    store = SqlStore(create_engine_for(database_url))
    try:
        (asked,) = [t for t in store.history(KEY, 10) if t.role is Role.USER]
        job = store.job(asked.id)
        assert job is not None
        return job
    finally:
        store.dispose()


async def _streaming(telegram: FakeTelegram) -> None:
    """Wait until the answer streams: its message sent, then edited as it grows.

    (Killed between Telegram's creating the message and the web process's recording it,
    a few milliseconds, the process would leave a message its successor cannot know of.)
    """
    await telegram.wait_until(lambda: [m for m in telegram.messages(CHAT) if m.edits], 60)


async def _one_complete_answer(telegram: FakeTelegram, database_url: str) -> None:
    """The person sees exactly one message: the whole answer, with its 👍/👎."""
    await telegram.wait_until(lambda: any(m.buttons for m in telegram.messages(CHAT)), 90)
    await telegram.settle(quiet=1.0, within=30)
    (shown,) = telegram.messages(CHAT)
    assert shown.text == ANSWER
    assert [b["text"] for b in shown.buttons] == ["👍", "👎"]
    sent = [c for c in telegram.calls_to("sendMessage") if int(c.params["chat_id"]) == CHAT]
    assert len(sent) == 1
    job = _the_job(database_url)
    assert job.delivered
    assert job.shown == (str(shown.message_id),)


@pytest.mark.postgres
async def test_a_web_process_killed_mid_stream_leaves_one_complete_answer(
    scaled: Scaled, telegram: FakeTelegram
) -> None:
    await scaled.running.until_logged("worker", "ready.")
    web = await scaled.start_web()
    await scaled.send("Tell me something long.")
    await _streaming(telegram)
    partial = telegram.messages(CHAT)[0].text
    scaled.running.kill(web)  # mid-stream: the worker goes on, nobody shows the rest
    assert partial != ANSWER
    assert not telegram.messages(CHAT)[0].buttons

    await scaled.start_web()
    await _one_complete_answer(telegram, scaled.database_url)


@pytest.mark.postgres
async def test_a_web_process_killed_before_sending_anything_leaves_one_answer(
    scaled: Scaled, telegram: FakeTelegram
) -> None:
    await scaled.running.until_logged("worker", "ready.")
    web = await scaled.start_web()
    await scaled.send(f"{LATE} Tell me something.")  # stored and acknowledged
    scaled.running.kill(web)
    assert telegram.messages(CHAT) == []

    await scaled.start_web()
    await _one_complete_answer(telegram, scaled.database_url)


async def test_a_polling_process_killed_mid_stream_leaves_one_complete_answer(
    telegram: FakeTelegram, tmp_path: Path
) -> None:
    database = tmp_path / "parley.db"
    settings = _settings(
        telegram, tmp_path, database_url=f"sqlite:///{database}", task_time_limit_s=4
    )
    running = Running(settings, tmp_path)
    try:
        running.launch("poll1", "-m", "bots.telegram", "-v")
        await running.until_logged("poll1", "Parley is on Telegram")
        telegram.push(private_message("Tell me something long."))
        await _streaming(telegram)
        running.kill("poll1")
        assert telegram.messages(CHAT)[0].text != ANSWER

        running.launch("poll2", "-m", "bots.telegram", "-v")
        await _one_complete_answer(telegram, f"sqlite:///{database}")
    finally:
        running.stop_all()


async def test_a_polling_process_killed_before_answering_answers_after_its_restart(
    telegram: FakeTelegram, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'parley.db'}"
    running = Running(
        _settings(telegram, tmp_path, database_url=url, task_time_limit_s=4), tmp_path
    )
    try:
        running.launch("poll1", "-m", "bots.telegram", "-v")
        await running.until_logged("poll1", "Parley is on Telegram")
        telegram.push(private_message(f"{LATE} Tell me something."))
        await _stored(url)  # accepted: the update is taken and the message stored
        running.kill("poll1")
        assert telegram.messages(CHAT) == []

        running.launch("poll2", "-m", "bots.telegram", "-v")
        await _one_complete_answer(telegram, url)
    finally:
        running.stop_all()


async def _stored(database_url: str, within: float = 60) -> None:
    """Wait until the person's message is stored with its answer job."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            _the_job(database_url)
            return
        except (ValueError, AssertionError, StoreError):
            await asyncio.sleep(0.1)
    raise AssertionError("the message was never stored")
