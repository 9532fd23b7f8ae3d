"""Voice notes and images read on a real Celery ``media`` worker, through a Redis of the test's own.

The worker is started as the Procfile starts it; the web side is the reader that
``build_media`` gives the scaled web process. Only a Redis key travels through the broker:
the bytes wait in Redis and are gone once read, and so is the result once taken.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis
import redis.asyncio

from config.settings import Settings
from config.wiring import Queued, build_media
from core.media import Attachment, MediaError, MediaIntake, MediaKind
from core.types import ReplyKind, Role
from tests.factories import make_message, make_service
from tests.media_fixtures import needs_media_tools, picture_with_text, speech
from tests.model_fixtures import REPO
from tests.process_fixtures import Processes, RedisServer
from workers.media_queue import CeleryMediaReader
from workers.queues import TaskQueue, celery_app

pytestmark = [pytest.mark.slow, needs_media_tools, pytest.mark.timeout(300)]


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    server = RedisServer(tmp_path)
    server.start()
    yield Settings(
        deployment="scaled",
        redis_url=server.url,
        data_dir=tmp_path / "data",
        media_wait_s=60,
        _env_file=None,  # type: ignore[call-arg]
    )
    server.kill()


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[Processes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env |= {
        "PARLEY_REDIS_URL": settings.scaling.redis_url.get_secret_value(),
        "PARLEY_DATA_DIR": str(settings.storage.data_dir),
        "PARLEY_DEPLOYMENT": "scaled",
        "PYTHONPATH": str(REPO),
    }
    processes = Processes(env, tmp_path)
    processes.start(
        "media",
        "worker",
        "-Q",
        "media",
        "-P",
        "threads",
        "-c",
        "2",
        "-n",
        "media@%h",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "INFO",
    )
    processes.wait_for("media", "ready.")
    yield processes
    processes.stop_all()


@pytest.fixture
async def intake(settings: Settings, worker: Processes) -> AsyncIterator[MediaIntake]:
    client = redis.asyncio.Redis.from_url(settings.scaling.redis_url.get_secret_value())
    tasks = TaskQueue(celery_app(settings))  # this process sends tasks to this test's own Redis
    built = build_media(settings, Queued(client, tasks))
    assert built is not None
    assert isinstance(built.reader, CeleryMediaReader)
    yield built
    await client.aclose()
    tasks.close()


def attachment(kind: MediaKind, data: bytes) -> Attachment:
    async def fetch(limit: int) -> bytes:
        return data

    return Attachment(kind=kind, fetch=fetch, size=len(data))


async def test_a_worker_transcribes_a_voice_note_for_the_conversation(
    intake: MediaIntake, settings: Settings, worker: Processes
) -> None:
    service, store, _ = make_service(media=intake)
    question = "What time is the meeting tomorrow?"
    message = replace(
        make_message(""),
        media=("voice",),
        attachments=(attachment(MediaKind.VOICE, speech(question)),),
    )
    reply = await service.handle(message).collect()
    assert reply.kind is ReplyKind.ANSWER
    [turn] = [t.text for t in store.history(message.key, 10) if t.role is Role.USER]
    assert re.findall(r"\w+", turn.lower()) == re.findall(r"\w+", question.lower())
    assert reply.text.startswith(f"🎤 I heard: “{turn}”")
    worker.wait_for("media", "x real time")  # the worker logged its transcription
    leftovers = redis.Redis.from_url(settings.scaling.redis_url.get_secret_value()).keys(
        "parley:media:*"
    )
    assert leftovers == [], "the bytes and the result are deleted once read"


async def test_a_worker_reads_images_and_refuses_corrupt_files(intake: MediaIntake) -> None:
    [reading] = await intake.read(
        [attachment(MediaKind.IMAGE, picture_with_text("Parking level 3, row F"))]
    )
    assert (reading.text, reading.source) == ("Parking level 3, row F", "Tesseract OCR")
    with pytest.raises(MediaError) as refused:
        await intake.read([attachment(MediaKind.VOICE, b"OggS" + bytes(300))])
    assert refused.value.reason == "unreadable"
    assert "could not play your voice message" in str(refused.value)
