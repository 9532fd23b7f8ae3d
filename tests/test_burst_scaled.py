"""Bursts in the scaled deployment: the Telegram webhook, a Celery worker, Redis, PostgreSQL.

The web side is the real one of ``build_web`` behind the real Telegram adapter (webhook
mode); the worker answers with :func:`build`, an echo generator that holds every answer
until a gate file exists and logs when each starts and ends, so that the test can see
that a person's answers ran one at a time while their bursts waited in the queue.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from config.wiring import Parley
from core.generator import EchoGenerator, GenerationRequest, GenerationResult, WordTokenCounter
from core.jobs import JobStatus
from core.limits import busy_text
from core.types import ConversationKey, Role
from tests.fakes.telegram import ADA, FakeTelegram, private_message
from tests.model_fixtures import MODEL_CACHE
from tests.test_burst import _WHO, BURST, _person, _webhook
from tests.test_scaled import Processes, processes, redis_server, web  # noqa: F401

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.timeout(600),
    pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning"),
]

GATE = "BURST_TEST_GATE"
LOG = "BURST_TEST_LOG"
_logging = threading.Lock()


@dataclass(slots=True)
class GatedEcho(EchoGenerator):
    """The worker's model here: the echo, held until the gate file exists, logging each answer."""

    gate: Path = Path()
    log: Path = Path()

    async def _run(self, request: GenerationRequest) -> AsyncIterator[str | GenerationResult]:
        asked = next(t.content for t in reversed(request.turns) if t.role is Role.USER)
        who = _WHO.findall(asked)[0]
        self._note("start", who)
        try:
            while not self.gate.exists():  # noqa: ASYNC110 (the test makes it in another process)
                await asyncio.sleep(0.05)
            async for item in EchoGenerator._run(self, request):
                yield item
        finally:
            self._note("end", who)

    def _note(self, what: str, who: str) -> None:
        with _logging, self.log.open("a") as log:
            log.write(f"{what} {who}\n")

    @property
    def tokens(self) -> WordTokenCounter:
        return WordTokenCounter()

    def close(self) -> None:
        pass


def build(settings: Settings) -> Any:
    """The factory named by ``PARLEY_GENERATOR`` in the worker."""
    return GatedEcho(gate=Path(os.environ[GATE]), log=Path(os.environ[LOG]))


def _in_progress(log: Path) -> tuple[Counter[str], Counter[str]]:
    """From the worker's log: answers in progress per person now, and at most."""
    now: Counter[str] = Counter()
    peak: Counter[str] = Counter()
    lines = log.read_text().splitlines() if log.exists() else []
    for line in lines:
        what, who = line.split()
        now[who] += 1 if what == "start" else -1
        peak[who] = max(peak[who], now[who])
    return +now, peak


@pytest.fixture
def scaled(redis_server: Any, postgres_url: str) -> Settings:  # noqa: F811
    return Settings(
        deployment="scaled",
        database_url=postgres_url,
        redis_url=redis_server.url,
        model_cache_dir=MODEL_CACHE,
        generator=f"{__name__}:build",
        max_new_tokens=12,
        sentiment=False,
        task_time_limit_s=60,
        visibility_timeout_s=90,
        reconcile_after_s=60,
        answer_wait_s=240,
        one_answer_at_a_time=True,
        max_queued_per_person=2,
        _env_file=None,  # type: ignore[call-arg]
    )


async def _until(condition: Any, within: float) -> None:
    async with asyncio.timeout(within):
        while not await asyncio.to_thread(condition):  # noqa: ASYNC110 (another process writes)
            await asyncio.sleep(0.1)


async def test_bursts_wait_their_turn_on_the_workers_and_every_message_gets_one_reply(
    web: Parley,  # noqa: F811
    processes: Processes,  # noqa: F811
    telegram: FakeTelegram,
    tmp_path: Path,
) -> None:
    gate, log = tmp_path / "gate", tmp_path / "generations.log"
    processes.env.update({GATE: str(gate), LOG: str(log)})
    processes.worker()
    people = [_person(n) for n in range(4)]
    ada = [f"ada message {n}" for n in range(5)]
    async with _webhook(telegram, web.service) as post:
        for n in range(5):  # back to back: four bursts of three, and Ada's five
            for p, person in enumerate(people):
                if n < len(BURST):
                    await post(private_message(f"p{p} {BURST[n]}", sender=person))
            await post(private_message(ada[n]))
        # With the gate shut, each person has one answer in progress on the worker.
        await _until(lambda: sum(_in_progress(log)[0].values()) == 5, within=120)
        await asyncio.sleep(1.0)
        running, _ = _in_progress(log)
        assert running == Counter({"ada": 1, "p0": 1, "p1": 1, "p2": 1, "p3": 1})
        gate.touch()
        await telegram.wait_until(
            lambda: (
                all(len(telegram.messages(p["id"])) >= 3 for p in people)
                and len(telegram.messages(ADA["id"])) >= 5
            ),
            within=180,
        )
        await telegram.settle(quiet=1.0, within=60)

    for p, person in enumerate(people):
        assert telegram.texts(person["id"]) == [f"You said: p{p} {text}" for text in BURST]
    assert telegram.texts(ADA["id"]) == [
        *(f"You said: {text}" for text in ada[:3]),
        busy_text(2),  # one in progress and two waiting: the last two are refused
        busy_text(2),
    ]
    _, peak = _in_progress(log)
    assert max(peak.values()) == 1  # one answer of a person at a time, on the worker too
    assert sum(line.startswith("end") for line in log.read_text().splitlines()) == 15
    for chat in [*(p["id"] for p in people), ADA["id"]]:
        key = ConversationKey("telegram", None, str(chat))
        turns = web.store.history(key, 100)
        asked = [t for t in turns if t.role is Role.USER]
        assert len(asked) == 3
        for turn in asked:
            job = web.store.job(turn.id)
            assert job is not None
            assert job.status is JobStatus.DONE
