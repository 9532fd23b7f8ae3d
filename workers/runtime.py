"""What a generation worker process holds: one model, one store, and the answering loop.

Built once per worker process on first use (:func:`worker_runtime`) and released at
shutdown. The Celery tasks in :mod:`workers.tasks` are thin: they call
:meth:`WorkerRuntime.answer` and :meth:`WorkerRuntime.reconcile`, which call the same
:class:`core.responder.Responder` that the embedded deployment runs in-process.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from enum import StrEnum
from typing import Any

from config.settings import Settings
from core.conversation import ConversationService
from core.jobs import Claim, ClaimOutcome
from core.metrics import GENERATION_SECONDS
from core.responder import APOLOGY, Responder
from core.types import Reply, ReplyKind, utcnow
from workers.streams import StreamWriter

__all__ = ["Outcome", "WorkerRuntime", "close_worker_runtime", "worker_runtime"]

log = logging.getLogger(__name__)

TIMED_OUT = "Sorry, answering this took too long and I had to stop. Please try a shorter question."


class Outcome(StrEnum):
    """What one run of the answer task did (its return value, for logs and tests)."""

    ANSWERED = "answered"
    FAILED = "failed"
    REPEATED = "repeated"
    """The job had ended already: its reply was published again."""
    WAITING = "waiting"
    BUSY = "busy"
    UNKNOWN = "unknown"


class WorkerRuntime:
    """The parts of one worker process, and the work its tasks do."""

    def __init__(self, settings: Settings, service: ConversationService, redis: Any) -> None:
        self.settings = settings
        self.service = service
        self.responder: Responder = service.responder
        self.redis = redis
        self._retried = threading.Lock()
        self._reconciling = threading.Lock()

    def answer(self, message_id: int, enqueue: Callable[[int], None]) -> Outcome:
        """Answer one accepted message once, then hand its conversation's next one on.

        ``enqueue`` queues the task for another message (the next in the conversation).
        Raises what the store raises when the database is down, for the task to retry.
        """
        earlier = self.service.store.job(message_id)
        if earlier is not None and earlier.attempts > 0 and not earlier.status.ended:
            # A job tried before may be what killed its worker: such jobs run one at a time
            # in this process, so that a poisoned one takes no other retried job down with
            # it again (and innocent ones are not set aside for its crashes).
            with self._retried:
                return self._answer(message_id, enqueue)
        return self._answer(message_id, enqueue)

    def _answer(self, message_id: int, enqueue: Callable[[int], None]) -> Outcome:
        claim = self.responder.claim(message_id)
        job = claim.job
        if claim.outcome is ClaimOutcome.CLAIMED:
            assert job is not None
            outcome = asyncio.run(self._run(claim))
        elif claim.outcome in (ClaimOutcome.WAIT, ClaimOutcome.BUSY):
            # The runner of the earlier message (or of this one) hands it on when it ends.
            return Outcome.WAITING if claim.outcome is ClaimOutcome.WAIT else Outcome.BUSY
        elif claim.outcome is ClaimOutcome.UNKNOWN:
            return Outcome.UNKNOWN
        else:
            reply = self.responder.ended(claim)
            assert reply is not None
            assert job is not None
            if claim.outcome is ClaimOutcome.SET_ASIDE:
                log.error("message %s set aside after %d attempts", message_id, job.attempts)
            StreamWriter(self.redis, message_id, job.attempts).reply(reply)
            outcome = Outcome.REPEATED if claim.outcome is ClaimOutcome.DONE else Outcome.FAILED
        if job is not None:
            following = self.service.store.next_job(job.key)
            if following is not None and following != message_id:
                enqueue(following)
        return outcome

    async def _run(self, claim: Claim) -> Outcome:
        assert claim.job is not None
        job = claim.job
        writer = StreamWriter(self.redis, job.message_id, job.attempts)
        started = time.perf_counter()
        reply: Reply | None = None
        try:
            async with asyncio.timeout(self.settings.scaling.task_time_limit_s):
                async for item in self.responder.run(claim):
                    if isinstance(item, Reply):
                        reply = item
                    else:
                        writer.delta(item)
        except TimeoutError:
            log.error("answering message %s ran out of time", job.message_id)
            store = self.service.store
            ended = await asyncio.to_thread(
                store.fail_job, job.message_id, "time limit", token=claim.token
            )
            reply = Reply(kind=ReplyKind.ERROR, text=TIMED_OUT if ended else APOLOGY)
        GENERATION_SECONDS.observe(time.perf_counter() - started)
        if reply is None:  # the job was forgotten meanwhile: nobody to answer
            return Outcome.UNKNOWN
        writer.reply(reply)
        return Outcome.ANSWERED if reply.kind is ReplyKind.ANSWER else Outcome.FAILED

    def lease_left(self, message_id: int) -> float:
        """Seconds until the lease on a job runs out (0 when none holds it)."""
        job = self.service.store.job(message_id)
        if job is None or job.lease_until is None:
            return 0.0
        return max(0.0, (job.lease_until - utcnow()).total_seconds())

    def reconcile(self, enqueue: Callable[[int], None]) -> int:
        """Queue again the accepted messages that show no progress; return how many."""
        if not self._reconciling.acquire(blocking=False):
            return 0  # another thread of this worker is at it
        try:
            return self._reconcile(enqueue)
        finally:
            self._reconciling.release()

    def _reconcile(self, enqueue: Callable[[int], None]) -> int:
        store = self.service.store
        older_than = utcnow() - timedelta(seconds=self.settings.jobs.reconcile_after_s)
        stalled = store.stalled_jobs(older_than)
        for message_id in stalled:
            store.touch_job(message_id)
            enqueue(message_id)
        if stalled:
            log.warning("queued %d stalled message(s) again: %s", len(stalled), stalled)
        return len(stalled)

    def close(self) -> None:
        """Release the model (GPU memory included) and the database connections."""
        for part in (self.service.generator, self.service.store):
            release = getattr(part, "close", None) or getattr(part, "dispose", None)
            if release is not None:
                release()


_runtime: WorkerRuntime | None = None
_lock = threading.Lock()


def worker_runtime(settings: Settings) -> WorkerRuntime:
    """This process's runtime, built on first use (the model loads once per process)."""
    global _runtime
    with _lock:
        if _runtime is None:
            from config.wiring import build_worker

            _runtime = build_worker(settings)
        return _runtime


def close_worker_runtime() -> None:
    """Release this process's runtime, if it was built."""
    global _runtime
    with _lock:
        if _runtime is not None:
            _runtime.close()
            _runtime = None
