"""/cancel and /retry in the scaled deployment for real: a Celery worker, Redis, PostgreSQL.

The worker answers with a slow echo (:func:`build_slow`, named by ``PARLEY_GENERATOR``), so
that /cancel arrives while it writes; the web side is the real service of ``build_web``,
which tells the worker to stop through Redis.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from config.settings import Settings
from config.wiring import Parley
from core.generator import TokenCounter, WordTokenCounter
from core.jobs import JobStatus
from core.turn_commands import CANCELLED, DROPPED, STOPPED_NOTE
from core.types import Message, ReplyKind, Role, UserRef
from tests.model_fixtures import MODEL_CACHE
from tests.telegram_fixtures import PacedGenerator
from tests.test_scaled import (  # noqa: F401  (fixtures)
    Processes,
    RedisServer,
    processes,
    redis_server,
    web,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(600)]

LONG = " ".join(f"w{i}" for i in range(400))
ADA = UserRef("telegram", "ada", "Ada")


@dataclass(slots=True)
class SlowEcho(PacedGenerator):
    """A paced echo that a worker can run: it counts words as tokens and has nothing to free."""

    @property
    def tokens(self) -> TokenCounter:
        return WordTokenCounter()

    def close(self) -> None:
        """Nothing to release."""


def build_slow(settings: Settings) -> SlowEcho:
    """The factory named by ``PARLEY_GENERATOR``: a long first answer, then echoes."""
    return SlowEcho(replies=[LONG], delay=0.05)


@pytest.fixture
def scaled(redis_server: RedisServer, postgres_url: str) -> Settings:  # noqa: F811
    return Settings(
        deployment="scaled",
        database_url=postgres_url,
        redis_url=redis_server.url,
        model_cache_dir=MODEL_CACHE,
        generator=f"{__name__}:build_slow",
        max_new_tokens=500,
        sentiment=False,
        task_time_limit_s=60,
        visibility_timeout_s=90,
        answer_wait_s=120,
        one_answer_at_a_time=False,  # a second message waits for its turn, as in a burst
        _env_file=None,  # type: ignore[call-arg]
    )


def said(text: str, n: int) -> Message:
    return Message(platform="telegram", chat="ada", user=ADA, text=text, message_id=str(n))


async def test_cancel_stops_the_workers_answer_drops_the_waiting_one_and_the_next_is_answered(
    web: Parley,  # noqa: F811
    processes: Processes,  # noqa: F811
) -> None:
    processes.worker(concurrency=2)
    nothing = await web.service.handle(said("/cancel", 1)).collect()
    assert nothing.text == "Nothing to cancel."
    accepted = await web.service.accept(said("Tell me everything.", 2))
    waiting = await web.service.accept(said("And then?", 3))
    stream = web.service.reply(accepted)
    dropping = asyncio.ensure_future(web.service.reply(waiting).collect())
    first = await asyncio.wait_for(stream.__anext__(), 120)  # the worker is writing
    assert first.startswith("w0")
    stopping = await web.service.handle(said("/cancel", 4)).collect()
    assert stopping.text == (
        "OK, I stopped my answer and dropped your message that was waiting for an answer."
    )
    stopped = await asyncio.wait_for(stream.collect(), 60)
    dropped = await asyncio.wait_for(dropping, 60)

    assert stopped.kind is ReplyKind.ANSWER
    assert stopped.text.startswith("w0 w1")
    assert stopped.text.endswith("\n\n" + STOPPED_NOTE)
    assert len(stopped.text.split()) < 300
    assert accepted.message_id is not None
    job = web.store.job(accepted.message_id)
    assert job is not None
    assert (job.status, job.attempts, job.answer_id) == (JobStatus.DONE, 1, stopped.answer_id)
    stored = web.store.answer(stopped.answer_id or 0)
    assert stored is not None
    assert stored.message.text == stopped.text
    assert (dropped.kind, dropped.text) == (ReplyKind.NOTICE, DROPPED)
    assert waiting.message_id is not None
    job = web.store.job(waiting.message_id)
    assert job is not None
    assert (job.status, job.error, job.answer_id) == (JobStatus.FAILED, CANCELLED, None)

    after = await asyncio.wait_for(web.service.handle(said("And now?", 5)).collect(), 120)
    assert after.kind is ReplyKind.ANSWER
    assert after.text == "You said: And now?"
    again = await asyncio.wait_for(web.service.handle(said("/retry", 6)).collect(), 120)
    assert again.kind is ReplyKind.ANSWER
    assert again.text.endswith("You said: And now?")
    assert again.answer_id not in (None, after.answer_id)
    turns = web.store.history(accepted.message.key, 100)
    # In the order stored: both messages, the stopped answer (the dropped one has none), then
    # the next message and its answer, and the /retry's copy of it and its answer.
    roles = [Role.USER, Role.USER, *[Role.ASSISTANT, Role.USER] * 2, Role.ASSISTANT]
    assert [t.role for t in turns] == roles
