"""What a worker process's tasks run on, handed to them when the worker starts.

The composition root (:func:`config.wiring.worker_parts`) builds a :class:`WorkerParts` for
each worker process, and the worker's bootstrap (:mod:`workers.celery_app`) hands it over
(:func:`hand_over`); the thin tasks of :mod:`workers.tasks` take it from :func:`handed`.
A generation worker's :class:`WorkerRuntime` (one model, one store, the answering loop) is
built from it once, on first use, and released at shutdown: its :meth:`WorkerRuntime.answer`
and :meth:`WorkerRuntime.reconcile` call the same :class:`core.responder.Responder` that the
embedded deployment runs in-process.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from config.settings import Settings
from core.db import SqlStore
from core.errors import ConfigurationError
from core.jobs import Claim, ClaimOutcome, JobStore
from core.metrics import GENERATION_SECONDS
from core.registry import AdapterRegistry
from core.responder import APOLOGY, Responder
from core.types import Reply, ReplyKind, utcnow
from workers.streams import StopFlag, StreamWriter

if TYPE_CHECKING:
    from workers.remote_explain import ExplainWorker

__all__ = ["Outcome", "WorkerParts", "WorkerRuntime", "hand_over", "handed"]

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

    def __init__(
        self,
        *,
        settings: Settings,
        store: JobStore,
        responder: Responder,
        redis: Any,
        release: Callable[[], None],
    ) -> None:
        """``redis`` is a ``redis.Redis``; ``release`` frees the model and the database."""
        self.settings = settings
        self.store = store
        self.responder = responder
        self.redis = redis
        self._release = release
        self._retried = threading.Lock()
        self._reconciling = threading.Lock()

    def answer(self, message_id: int, enqueue: Callable[[int], None]) -> Outcome:
        """Answer one accepted message once, then hand its conversation's next one on.

        ``enqueue`` queues the task for another message (the next in the conversation).
        Raises what the store raises when the database is down, for the task to retry.
        """
        earlier = self.store.job(message_id)
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
            following = self.store.next_job(job.key)
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
                stop = StopFlag(self.redis, job.message_id)
                async for item in self.responder.run(claim, stop):
                    if isinstance(item, Reply):
                        reply = item
                    else:
                        writer.delta(item)
        except TimeoutError:
            log.error("answering message %s ran out of time", job.message_id)
            store = self.store
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
        job = self.store.job(message_id)
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
        store = self.store
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
        self._release()


class WorkerParts:
    """What the tasks of one worker process run on, built by the composition root."""

    def __init__(
        self,
        *,
        settings: Settings,
        redis: Any,
        open_store: Callable[[], SqlStore],
        open_registry: Callable[[SqlStore], AdapterRegistry],
        build_runtime: Callable[[], WorkerRuntime],
        build_explainer: Callable[[], ExplainWorker] | None = None,
    ) -> None:
        """``redis`` is a ``redis.Redis``; ``build_runtime`` and ``build_explainer`` load the
        model (each called once, on first need)."""
        self.settings = settings
        self.redis = redis
        self.open_store = open_store
        """A store of the task's own (the nightly run and the purge), disposed by the task."""
        self.open_registry = open_registry
        self._build_runtime = build_runtime
        self._runtime: WorkerRuntime | None = None
        self._build_explainer = build_explainer
        self._explainer: ExplainWorker | None = None
        self._lock = threading.Lock()

    def runtime(self) -> WorkerRuntime:
        """The generation runtime, built on first use (the model loads once per process)."""
        with self._lock:
            if self._runtime is None:
                self._runtime = self._build_runtime()
            return self._runtime

    def explainer(self) -> ExplainWorker:
        """The ``explain`` queue's part, built on first use (with a model of its own)."""
        with self._lock:
            if self._explainer is None:
                if self._build_explainer is None:
                    raise ConfigurationError("this worker was not given an explainer")
                self._explainer = self._build_explainer()
            return self._explainer

    def close(self) -> None:
        """Release the generation runtime and the explainer, if they were built."""
        with self._lock:
            if self._runtime is not None:
                self._runtime.close()
                self._runtime = None
            if self._explainer is not None:
                self._explainer.close()
                self._explainer = None


_handed: WorkerParts | None = None


def hand_over(parts: WorkerParts | None) -> WorkerParts | None:
    """Give this process's tasks their parts (``None``: take them back); returns the old ones."""
    global _handed
    before, _handed = _handed, parts
    return before


def handed() -> WorkerParts:
    """The parts handed to this process's tasks at worker start."""
    if _handed is None:
        raise ConfigurationError(
            "Parley's tasks run in a worker started as `celery -A workers.celery_app worker`"
        )
    return _handed
