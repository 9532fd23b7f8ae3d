"""The scaled deployment: a voice note outlives the web process reading it (``kill -9``).

Real processes: a Redis server of the test's own, PostgreSQL, one Celery worker on the
``generate`` and ``media`` queues (the echo generator; the packaged Whisper reads the file,
as on a ``media`` worker), and ``python -m bots.web`` with ``PARLEY_DEPLOYMENT=scaled``,
which takes Telegram's webhooks from this test against the fake Bot API server in it.
The first web process is killed while it downloads the voice note (a text sent right after
it is stored and acknowledged); the second takes the voice note over: the file is read on
the worker, and the person gets one reply to it, then the answer to the text, nothing twice.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bots.telegram import WEBHOOK_PATH
from core.db import SqlStore, create_engine_for
from core.jobs import JobStatus
from core.types import ConversationKey, Role, utcnow
from tests.fakes.telegram import ADA, FakeTelegram, private_message, voice_message
from tests.media_fixtures import needs_media_tools, speech
from tests.model_fixtures import MODEL_CACHE, REPO
from tests.process_fixtures import Processes, RedisServer, redis_server
from tests.test_intake_restart import (
    LEASE_S,
    QUESTION,
    SECRET,
    WebProcess,
    one_reply_each,
    post,
)

pytestmark = [
    pytest.mark.slow,
    needs_media_tools,
    pytest.mark.postgres,
    pytest.mark.timeout(600),
    pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning"),
]

__all__ = ["redis_server"]

CHAT = ConversationKey("telegram", None, str(ADA["id"]))


@pytest.fixture
def environment(tmp_path: Path, redis_server: RedisServer, postgres_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    return env | {
        "PYTHONPATH": str(REPO),
        "PARLEY_DEPLOYMENT": "scaled",
        "PARLEY_DATABASE_URL": postgres_url,
        "PARLEY_REDIS_URL": redis_server.url,
        "PARLEY_DATA_DIR": str(tmp_path / "data"),
        "PARLEY_MODEL_CACHE_DIR": str(MODEL_CACHE),
        "PARLEY_GENERATOR": "tests.test_intake_restart:echo",
        "PARLEY_SENTIMENT": "false",
        "PARLEY_ONE_ANSWER_AT_A_TIME": "false",
        "PARLEY_INTAKE_LEASE_S": str(LEASE_S),
        "PARLEY_MEDIA_WAIT_S": "120",
        "PARLEY_TELEGRAM_WEBHOOK_SECRET": SECRET,
        "PARLEY_TELEGRAM_WEBHOOK_URL": "https://parley.example" + WEBHOOK_PATH,
    }


@pytest.fixture
def worker(environment: dict[str, str], tmp_path: Path) -> Iterator[Processes]:
    processes = Processes(environment, tmp_path)
    processes.start(
        "worker", "worker", "-Q", "generate,media", "-P", "threads", "-c", "4",
        "-n", "both@%h", "--without-gossip", "--without-mingle", "--loglevel", "INFO",
    )  # fmt: skip
    processes.wait_for("worker", "ready.")
    yield processes
    processes.stop_all()


async def test_a_voice_note_outlives_the_scaled_web_process_reading_it(
    environment: dict[str, str], worker: Processes, tmp_path: Path, postgres_url: str
) -> None:
    async with FakeTelegram() as telegram:
        environment |= {
            "PARLEY_TELEGRAM_TOKEN": telegram.token,
            "PARLEY_TELEGRAM_API_URL": telegram.api_url,
        }
        recording = speech(QUESTION)
        file_id = telegram.add_file(recording)
        telegram.download_delay = 60.0
        first = WebProcess(environment, tmp_path / "web1.log")
        try:
            await first.wait_ready()
            assert await post(first, voice_message(file_id, duration=2, size=len(recording))) == 200
            await telegram.wait_until(lambda: telegram.downloads, within=30)
            assert await post(first, private_message("And what about tomorrow?")) == 200
        finally:
            first.kill()
        assert telegram.messages(ADA["id"]) == []

        telegram.download_delay = 0.0
        second = WebProcess(environment, tmp_path / "web2.log")
        try:
            await second.wait_ready()
            await telegram.wait_until(lambda: len(telegram.messages(ADA["id"])) >= 2, within=240)
            await telegram.settle(quiet=1.0, within=30)
        finally:
            await asyncio.to_thread(second.stop)

    one_reply_each(telegram, file_id)
    worker.wait_for("worker", "parley.read_media")  # the media worker read it
    store = SqlStore(create_engine_for(postgres_url))
    try:
        assert store.stalled_intakes("telegram", utcnow()) == []
        assert store.next_job(CHAT) is None
        for job_id in answered_jobs(store):
            job = store.job(job_id)
            assert job is not None
            assert job.status in (JobStatus.DONE, JobStatus.FAILED)
    finally:
        store.dispose()


def answered_jobs(store: SqlStore) -> list[int]:
    return [t.id for t in store.history(CHAT, 10) if t.role is Role.USER]
