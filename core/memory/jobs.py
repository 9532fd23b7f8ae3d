"""Answer jobs in memory: :class:`core.jobs.JobStore` for :class:`core.memory.MemoryStore`.

The same lifecycle as :mod:`core.db.jobs`, and the same deliveries as
:mod:`core.db.deliveries` (:class:`core.jobs.DeliveryStore`), each step atomic under the
state's lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Unpack

from core.jobs import (
    AnswerDetails,
    Claim,
    ClaimOutcome,
    DeliveryHold,
    Job,
    JobStatus,
    delivery_free,
    lease_expired,
    set_aside_reason,
    settled_claim,
)
from core.memory.state import MemoryPart
from core.store import new_job_token
from core.types import ConversationKey, Role, StoredMessage, utcnow

__all__ = ["MemoryJobs"]


class MemoryJobs(MemoryPart):
    """:class:`core.jobs.JobStore` in memory."""

    def job(self, message_id: int) -> Job | None:
        with self._state.lock:
            return self._state.jobs.get(message_id)

    def claim_job(self, message_id: int, *, lease_seconds: float, max_attempts: int) -> Claim:
        now = utcnow()
        state = self._state
        with state.lock:
            job = state.jobs.get(message_id)
            if job is None:
                return Claim(ClaimOutcome.UNKNOWN)
            if (settled := settled_claim(job, now)) is not None:
                return settled
            if self._waits(job):
                return Claim(ClaimOutcome.WAIT, job)
            if job.attempts >= max_attempts:
                error = set_aside_reason(job.attempts)
                return Claim(ClaimOutcome.SET_ASIDE, self._end(job, JobStatus.FAILED, error=error))
            token = new_job_token()
            state.tokens[message_id] = token
            state.jobs[message_id] = job = replace(
                job,
                status=JobStatus.RUNNING,
                attempts=job.attempts + 1,
                lease_until=now + timedelta(seconds=lease_seconds),
                updated_at=now,
            )
            return Claim(ClaimOutcome.CLAIMED, job, token)

    def finish_job(
        self, message_id: int, token: str, text: str, **answer: Unpack[AnswerDetails]
    ) -> StoredMessage | None:
        state = self._state
        with state.lock:
            job = state.jobs.get(message_id)
            if job is None or not self._holds(job, token):
                return None
            draft = StoredMessage(id=0, role=Role.ASSISTANT, text=text, **answer)
            stored = state.add_turn(job.key, draft)
            self._end(job, JobStatus.DONE, answer_id=stored.id)
            return stored

    def fail_job(self, message_id: int, reason: str, *, token: str | None = None) -> bool:
        with self._state.lock:
            job = self._state.jobs.get(message_id)
            if job is None or job.status.ended:
                return False
            if token is not None and not self._holds(job, token):
                return False
            self._end(job, JobStatus.FAILED, error=reason)
            return True

    def next_job(self, key: ConversationKey) -> int | None:
        with self._state.lock:
            open_jobs = (j for j in self._state.jobs.values() if j.key == key)
            return min((j.message_id for j in open_jobs if not j.status.ended), default=None)

    def stalled_jobs(self, older_than: datetime, *, limit: int = 100) -> list[int]:
        now = utcnow()
        with self._state.lock:
            heads: dict[ConversationKey, Job] = {}
            for job in sorted(self._state.jobs.values(), key=lambda j: j.message_id):
                if not job.status.ended:
                    heads.setdefault(job.key, job)
            stalled = [
                job.message_id
                for job in heads.values()
                if (job.status is JobStatus.QUEUED and job.updated_at < older_than)
                or (job.status is JobStatus.RUNNING and lease_expired(job, now))
            ]
            return sorted(stalled)[: max(limit, 0)]

    def touch_job(self, message_id: int) -> None:
        with self._state.lock:
            job = self._state.jobs.get(message_id)
            if job is not None and not job.status.ended:
                self._state.jobs[message_id] = replace(job, updated_at=utcnow())

    # ---- deliveries (core.jobs.DeliveryStore) ------------------------------------------

    def hold_deliveries(self, hold: DeliveryHold | None) -> None:
        with self._state.lock:
            self._state.delivery_hold = hold

    def claim_delivery(self, message_id: int, holder: str, *, lease_seconds: float) -> Job | None:
        now = utcnow()
        with self._state.lock:
            job = self._state.jobs.get(message_id)
            if job is None or not delivery_free(job, holder, now):
                return None
            until = now + timedelta(seconds=lease_seconds)
            return self._deliver(job, delivery_holder=holder, delivery_lease_until=until)

    def renew_deliveries(self, holder: str, *, lease_seconds: float) -> int:
        until = utcnow() + timedelta(seconds=lease_seconds)
        with self._state.lock:
            held = self._held_by(holder)
            for job in held:
                self._deliver(job, delivery_lease_until=until)
            return len(held)

    def release_deliveries(self, holder: str) -> int:
        with self._state.lock:
            held = self._held_by(holder)
            for job in held:
                self._deliver(job, delivery_holder=None, delivery_lease_until=None)
            return len(held)

    def record_shown(self, message_id: int, holder: str, shown: Sequence[str]) -> bool:
        with self._state.lock:
            job = self._state.jobs.get(message_id)
            if job is None or job.delivered or job.delivery_holder != holder:
                return False
            self._deliver(job, shown=tuple(shown))
            return True

    def finish_delivery(self, message_id: int, holder: str) -> bool:
        with self._state.lock:
            job = self._state.jobs.get(message_id)
            if job is None or job.delivered or job.delivery_holder not in (None, holder):
                return False
            self._deliver(job, delivered=True, delivery_holder=None, delivery_lease_until=None)
            return True

    def undelivered(self, platforms: Sequence[str], *, limit: int = 100) -> list[Job]:
        now = utcnow()
        with self._state.lock:
            free = [
                job
                for job in self._state.jobs.values()
                if job.key.platform in platforms
                and not job.delivered
                and (job.delivery_holder is None or delivery_free(job, "", now))
                and job.message_id not in self._state.intakes  # theirs: core.resume
            ]
            return sorted(free, key=lambda j: j.message_id)[: max(limit, 0)]

    def _held_by(self, holder: str) -> list[Job]:
        """The pending deliveries ``holder`` holds; the caller holds the lock."""
        jobs = self._state.jobs.values()
        return [j for j in jobs if not j.delivered and j.delivery_holder == holder]

    def _deliver(self, job: Job, **changes: object) -> Job:
        """Change the job's delivery; the caller holds the lock."""
        changed = replace(job, **changes)  # type: ignore[arg-type]
        self._state.jobs[job.message_id] = changed
        return changed

    def _holds(self, job: Job, token: str) -> bool:
        """Whether ``token`` holds the job: it runs under that lease, expired or not."""
        return job.status is JobStatus.RUNNING and self._state.tokens.get(job.message_id) == token

    def _waits(self, job: Job) -> bool:
        """Whether an earlier job of the same conversation has not ended yet."""
        return any(
            other.key == job.key and other.message_id < job.message_id and not other.status.ended
            for other in self._state.jobs.values()
        )

    def _end(
        self,
        job: Job,
        status: JobStatus,
        *,
        answer_id: int | None = None,
        error: str | None = None,
    ) -> Job:
        """End the job with its one outcome; the caller holds the lock."""
        self._state.tokens.pop(job.message_id, None)
        ended = replace(
            job,
            status=status,
            lease_until=None,
            answer_id=answer_id,
            error=error,
            updated_at=utcnow(),
        )
        self._state.jobs[job.message_id] = ended
        return ended
