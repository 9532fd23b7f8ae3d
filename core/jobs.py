"""Answer jobs: every accepted message that needs an answer, until it has exactly one.

A job is opened in the same transaction that stores the person's message (``append(...,
expects_answer=True)``), so nothing accepted can be lost between the two. Whoever answers
(the in-process answerer of the embedded deployment, or a Celery worker) first *claims*
the job, then *finishes* it with the answer or *fails* it with a reason. The store makes
each step atomic, which gives the guarantees the deployments rely on:

- **Exactly one outcome.** A job ends once, ``done`` (with its answer stored in the same
  transaction) or ``failed``; a second finish or fail is refused.
- **One runner at a time.** A claim holds a lease; while it lasts nobody else can claim
  the job. A runner that died (worker killed) loses the lease when it expires, and the
  next delivery of the task, or the reconciler, claims the job again.
- **Order within a conversation.** A job is claimable only when every earlier job of its
  conversation has ended; otherwise the claim says ``WAIT`` and the runner of the earlier
  job hands this one on when it ends (``next_job``).
- **Bounded deliveries.** Every claim counts an attempt; a job that has used up its
  attempts (a poisoned message that crashes its worker each time) is failed by the claim
  itself and never runs again.

The lifecycle::

    queued ──claim──▶ running ──finish──▶ done
       ▲                 │  └───fail────▶ failed
       └── lease expires ┘

Delivery is part of the job's life too (:class:`DeliveryStore`, :mod:`core.outbox`): a
job is opened *held* for delivery by the process that accepted its message, which renews
that hold while it lives; once the reply has reached the person the job is *delivered*.
A job whose holder died (its hold expired) is delivered by another live process, which
edits the platform messages already sent (:attr:`Job.shown`) rather than sending anew.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol, Required, TypedDict, Unpack

from core.types import ContextReport, ConversationKey, StoredMessage

__all__ = [
    "AnswerDetails",
    "Claim",
    "ClaimOutcome",
    "DeliveryHold",
    "DeliveryStore",
    "Job",
    "JobStatus",
    "JobStore",
    "delivery_free",
    "lease_expired",
    "set_aside_reason",
    "settled_claim",
]


class JobStatus(StrEnum):
    """Where a job is in its lifecycle."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    @property
    def ended(self) -> bool:
        """True once the job has its one outcome."""
        return self in (JobStatus.DONE, JobStatus.FAILED)


_SET_ASIDE = "set aside after"


def set_aside_reason(attempts: int) -> str:
    """The error of a job failed for having used up its attempts (a poisoned message)."""
    return f"{_SET_ASIDE} {attempts} attempts"


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """The answer owed to one stored message (``message_id``, the job's id)."""

    message_id: int
    key: ConversationKey
    status: JobStatus
    attempts: int
    created_at: datetime
    updated_at: datetime
    lease_until: datetime | None = None
    answer_id: int | None = None
    error: str | None = None
    in_group: bool = False
    """Asked in a group chat: the prompt names each turn's speaker."""
    delivered: bool = False
    """The reply reached the person (jobs from before deliveries were kept count as such)."""
    delivery_holder: str | None = None
    """The process that holds the delivery (see :class:`DeliveryStore`), if any."""
    delivery_lease_until: datetime | None = None
    """When the holder's hold runs out unless it renews it."""
    shown: tuple[str, ...] = ()
    """The platform messages of the reply sent so far (ids, in order)."""

    @property
    def set_aside(self) -> bool:
        """Failed for having used up its attempts (see :func:`set_aside_reason`)."""
        return self.status is JobStatus.FAILED and (self.error or "").startswith(_SET_ASIDE)


class ClaimOutcome(StrEnum):
    """What a claim found."""

    CLAIMED = "claimed"
    """The caller holds the job now: answer it, then finish or fail it with the token."""
    DONE = "done"
    """Answered already; ``Claim.job.answer_id`` names the answer."""
    FAILED = "failed"
    """Failed already (``Claim.job.error`` says why); it will not be answered."""
    BUSY = "busy"
    """Another runner holds an unexpired lease on it."""
    WAIT = "wait"
    """An earlier message of the same conversation has not been answered yet."""
    SET_ASIDE = "set_aside"
    """It had used up its attempts: the claim failed it (a poisoned message)."""
    UNKNOWN = "unknown"
    """No such job (never opened, or forgotten with ``/forget``)."""


@dataclass(frozen=True, slots=True)
class Claim:
    """The result of :meth:`JobStore.claim_job`."""

    outcome: ClaimOutcome
    job: Job | None = None
    token: str | None = None
    """Proof of holding the lease, for finish and fail; set when CLAIMED."""


class AnswerDetails(TypedDict, total=False):
    """What :meth:`JobStore.finish_job` stores with an answer besides its text.

    ``blocked_reason`` marks an answer that moderation replaced (its text is then the safe
    reply): it is kept out of training data.
    """

    model_version: Required[str]
    context: Required[ContextReport | None]
    blocked_reason: str | None


def lease_expired(job: Job, now: datetime) -> bool:
    """Whether a running job's lease has run out (its runner is presumed dead)."""
    return job.lease_until is not None and job.lease_until < now


def delivery_free(job: Job, holder: str, now: datetime) -> bool:
    """Whether ``holder`` may take the job's delivery: pending, and unheld, its own or expired."""
    if job.delivered:
        return False
    if job.delivery_holder is None or job.delivery_holder == holder:
        return True
    return job.delivery_lease_until is not None and job.delivery_lease_until < now


def settled_claim(job: Job, now: datetime) -> Claim | None:
    """What a claim says of a job nobody may take: ended, or held under a live lease.

    ``None`` when the job is free as far as it alone goes (the store then checks the
    order of its conversation and its attempts).
    """
    if job.status is JobStatus.DONE:
        return Claim(ClaimOutcome.DONE, job)
    if job.status is JobStatus.FAILED:
        return Claim(ClaimOutcome.FAILED, job)
    if job.status is JobStatus.RUNNING and not lease_expired(job, now):
        return Claim(ClaimOutcome.BUSY, job)
    return None


class JobStore(Protocol):
    """Answer jobs, kept beside the messages they answer (see the module docstring).

    ``append(..., expects_answer=True)`` opens a job (status ``queued``) with the message.
    """

    def job(self, message_id: int) -> Job | None:
        """The job of one message, or ``None``."""
        ...

    def claim_job(self, message_id: int, *, lease_seconds: float, max_attempts: int) -> Claim:
        """Take the job to answer it, if it is free, next in its conversation and not spent.

        A claim of a ``queued`` job, or of a ``running`` one whose lease has expired,
        counts one attempt and returns CLAIMED with a fresh token. When the job had already
        used ``max_attempts`` attempts, the claim fails it instead (error "set aside after
        N attempts") and returns SET_ASIDE.
        """
        ...

    def finish_job(
        self, message_id: int, token: str, text: str, **answer: Unpack[AnswerDetails]
    ) -> StoredMessage | None:
        """Store the answer and end the job ``done``, in one transaction.

        Returns the stored answer; ``None`` (and nothing stored) when ``token`` no longer
        holds the job: its lease was taken over, or it already ended.
        """
        ...

    def fail_job(self, message_id: int, reason: str, *, token: str | None = None) -> bool:
        """End the job ``failed``; True if this call ended it.

        With a token, only while that token holds the job; without one (an operator, or a
        waiter that gives up), whenever the job has not ended yet.
        """
        ...

    def next_job(self, key: ConversationKey) -> int | None:
        """The oldest job of the conversation that has not ended, if any."""
        ...

    def stalled_jobs(self, older_than: datetime, *, limit: int = 100) -> list[int]:
        """Jobs to run again: the oldest unended job of each conversation that shows no life.

        That is a ``queued`` job last touched before ``older_than`` (its task was lost, for
        example with Redis's data), or a ``running`` one whose lease has expired. Oldest first.
        """
        ...

    def touch_job(self, message_id: int) -> None:
        """Record that the job was queued again now (so the reconciler waits before the next)."""
        ...


@dataclass(frozen=True, slots=True)
class DeliveryHold:
    """A process's hold on the deliveries of the jobs it opens (see :class:`DeliveryStore`)."""

    holder: str
    lease_seconds: float


class DeliveryStore(Protocol):
    """Who delivers each job's reply to the person: an outbox with a lease (:mod:`core.outbox`).

    A job is *pending* until :meth:`finish_delivery`; while pending it is held by at most
    one live process. A hold lasts ``lease_seconds`` unless renewed; a pending job with no
    holder, or whose hold ran out, is free for any process to :meth:`claim_delivery`.
    """

    def hold_deliveries(self, hold: DeliveryHold | None) -> None:
        """Open the jobs of messages stored through this store from now on held by ``hold``."""
        ...

    def claim_delivery(self, message_id: int, holder: str, *, lease_seconds: float) -> Job | None:
        """Hold the job's delivery if it is pending and free (or held by ``holder``).

        Returns the job as held, or ``None``: delivered already, held by another, or unknown.
        """
        ...

    def renew_deliveries(self, holder: str, *, lease_seconds: float) -> int:
        """Extend every pending hold of ``holder`` by ``lease_seconds`` from now; how many."""
        ...

    def release_deliveries(self, holder: str) -> int:
        """Let go of every pending hold of ``holder`` (at shutdown); how many."""
        ...

    def record_shown(self, message_id: int, holder: str, shown: Sequence[str]) -> bool:
        """Record the platform messages of a reply sent so far, while ``holder`` holds it."""
        ...

    def finish_delivery(self, message_id: int, holder: str) -> bool:
        """Mark the reply delivered, unless another process took the delivery over."""
        ...

    def undelivered(self, platforms: Sequence[str], *, limit: int = 100) -> list[Job]:
        """Pending deliveries free to claim in conversations of ``platforms``, oldest first;
        not those of messages whose files are still open (:mod:`core.resume` takes them)."""
        ...
