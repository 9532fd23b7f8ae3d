"""The in-memory store: every store contract in a few dictionaries, used by tests.

:class:`MemoryStore` implements :class:`core.store.Store` and is the reference the shared
store tests hold :class:`core.db.SqlStore` to; anything that needs no persistence can use it.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from core.feedback_data import UNTRUSTED_PLATFORMS, FeedbackRecord, VersionRates
from core.jobs import Claim, ClaimOutcome, Job, JobStatus, set_aside_reason
from core.sentiment import Sentiment
from core.store import (
    LINK_CODE_TTL,
    Usage,
    merge_profiles,
    new_job_token,
    new_link_code,
    normalize_link_code,
    personal_data_json,
)
from core.types import (
    Answer,
    ContextReport,
    ConversationKey,
    Feedback,
    Rating,
    Role,
    StoredMessage,
    UserProfile,
    UserRef,
    utcnow,
)

__all__ = ["MemoryStore"]

Identity = tuple[str, str]  # (platform, platform user id)


@dataclass(slots=True)
class _LinkCode:
    owner: Identity
    expires_at: datetime
    used: bool = False


class MemoryStore:
    """A complete store in a few dictionaries; thread-safe, gone when the process ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._turns: dict[ConversationKey, list[StoredMessage]] = {}
        self._since: dict[ConversationKey, int] = {}
        self._answers: dict[int, Answer] = {}
        self._feedback: dict[int, dict[tuple[str, str], Feedback]] = {}
        # Each (answer, identity) pair's feedback id, kept when the feedback is replaced.
        self._feedback_ids: dict[tuple[int, Identity], int] = {}
        # Profiles by person: the person's first identity.
        self._profiles: dict[Identity, UserProfile] = {}
        # Every identity seen, with the latest name seen for it (None: never named).
        self._people: dict[Identity, str | None] = {}
        # Identities linked to another person; the rest are their own person.
        self._person_of: dict[Identity, Identity] = {}
        self._codes: dict[str, _LinkCode] = {}
        self._events: dict[tuple[str, str], datetime] = {}
        self._jobs: dict[int, Job] = {}
        # The token of each running job's current lease holder.
        self._tokens: dict[int, str] = {}

    def _known(self, user: UserRef | None) -> UserRef | None:
        """The person with the latest name seen for them."""
        if user is None:
            return None
        name = self._people.get((user.platform, user.id))
        if name is None:
            name = user.display_name
        return user if name == user.display_name else replace(user, display_name=name)

    def _remember(self, user: UserRef) -> None:
        person = (user.platform, user.id)
        if user.display_name is not None or person not in self._people:
            self._people[person] = user.display_name

    def _person(self, identity: Identity) -> Identity:
        return self._person_of.get(identity, identity)

    def _identities(self, person: Identity) -> list[Identity]:
        """The person's identities, in the order they were first seen."""
        return [identity for identity in self._people if self._person(identity) == person]

    def _current(self, message: StoredMessage) -> StoredMessage:
        user = self._known(message.user)
        return message if user is message.user else replace(message, user=user)

    def append(
        self,
        key: ConversationKey,
        role: Role,
        text: str,
        *,
        user: UserRef | None = None,
        platform_message_id: str | None = None,
        model_version: str | None = None,
        context: ContextReport | None = None,
        sentiment: Sentiment | None = None,
        expects_answer: bool = False,
        in_group: bool = False,
    ) -> StoredMessage:
        with self._lock:
            if user is not None:
                self._remember(user)
            stored = self._append(
                key,
                role,
                text,
                user=user,
                platform_message_id=platform_message_id,
                model_version=model_version,
                context=context,
                sentiment=sentiment,
            )
            if expects_answer:
                self._jobs[stored.id] = Job(
                    message_id=stored.id,
                    key=key,
                    status=JobStatus.QUEUED,
                    attempts=0,
                    created_at=stored.created_at,
                    updated_at=stored.created_at,
                    in_group=in_group,
                )
            return stored

    def _append(
        self,
        key: ConversationKey,
        role: Role,
        text: str,
        *,
        user: UserRef | None = None,
        platform_message_id: str | None = None,
        model_version: str | None = None,
        context: ContextReport | None = None,
        sentiment: Sentiment | None = None,
    ) -> StoredMessage:
        """Store one turn; the caller holds the lock."""
        stored = StoredMessage(
            id=next(self._ids),
            role=role,
            text=text,
            user=user,
            platform_message_id=platform_message_id,
            model_version=model_version,
            context=context,
            sentiment=sentiment,
        )
        self._turns.setdefault(key, []).append(stored)
        if role is Role.ASSISTANT:
            self._answers[stored.id] = Answer(message=stored, conversation=key)
        return stored

    def history(self, key: ConversationKey, limit: int) -> list[StoredMessage]:
        with self._lock:
            since = self._since.get(key, 0)
            turns = [t for t in self._turns.get(key, []) if t.id > since]
            return [self._current(t) for t in turns[-limit:]] if limit > 0 else []

    def message(self, message_id: int) -> StoredMessage | None:
        with self._lock:
            for turns in self._turns.values():
                for turn in turns:
                    if turn.id == message_id:
                        return self._current(turn)
            return None

    def history_before(self, message_id: int, limit: int) -> list[StoredMessage]:
        with self._lock:
            key = next(
                (k for k, turns in self._turns.items() if any(t.id == message_id for t in turns)),
                None,
            )
            if key is None or limit <= 0:
                return []
            answers = {j.answer_id: j.message_id for j in self._jobs.values() if j.answer_id}
            since = self._since.get(key, 0)

            def place(turn: StoredMessage) -> tuple[int, int]:
                return answers.get(turn.id, turn.id), turn.id

            turns = sorted(
                (t for t in self._turns[key] if t.id > since and place(t)[0] < message_id),
                key=place,
            )
            return [self._current(t) for t in turns[-limit:]]

    def reset(self, key: ConversationKey) -> None:
        with self._lock:
            turns = self._turns.get(key)
            if turns:
                self._since[key] = turns[-1].id

    def mark_delivered(self, message_id: int, platform_message_id: str) -> None:
        with self._lock:
            for key, turns in self._turns.items():
                for i, turn in enumerate(turns):
                    if turn.id == message_id:
                        turns[i] = replace(turn, platform_message_id=platform_message_id)
                        if message_id in self._answers:
                            self._answers[message_id] = Answer(message=turns[i], conversation=key)
                        return
            raise KeyError(f"no message with id {message_id}")

    def find_by_platform_id(
        self, key: ConversationKey, platform_message_id: str
    ) -> StoredMessage | None:
        with self._lock:
            for turn in reversed(self._turns.get(key, [])):
                if turn.platform_message_id == platform_message_id:
                    return self._current(turn)
            return None

    def answer(self, answer_id: int) -> Answer | None:
        with self._lock:
            found = self._answers.get(answer_id)
            if found is None:
                return None
            return replace(found, message=self._current(found.message))

    def save_feedback(self, feedback: Feedback) -> None:
        with self._lock:
            if feedback.answer_id not in self._answers:
                raise KeyError(f"no answer with id {feedback.answer_id}")
            self._remember(feedback.user)
            by_user = self._feedback.setdefault(feedback.answer_id, {})
            identity = (feedback.user.platform, feedback.user.id)
            by_user[identity] = feedback
            next_id = len(self._feedback_ids) + 1
            self._feedback_ids.setdefault((feedback.answer_id, identity), next_id)

    def feedback_records(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        untrusted_platforms: Collection[str] = UNTRUSTED_PLATFORMS,
    ) -> list[FeedbackRecord]:
        records: list[FeedbackRecord] = []
        with self._lock:
            for answer_id, by_user in self._feedback.items():
                found = self._answers.get(answer_id)
                if found is None or found.message.context is None:
                    continue
                if found.message.blocked_reason is not None:  # never training data
                    continue
                for identity, given in by_user.items():
                    if (since is not None and given.given_at < since) or (
                        until is not None and given.given_at >= until
                    ):
                        continue
                    person = self._person(identity)
                    records.append(
                        FeedbackRecord(
                            feedback_id=self._feedback_ids[(answer_id, identity)],
                            answer_id=answer_id,
                            person=_person_key(person),
                            platform=identity[0],
                            trusted=identity[0] not in untrusted_platforms,
                            allows_training=self._profiles.get(
                                person, UserProfile()
                            ).allows_training,
                            prompt=found.message.context.turns,
                            answer=found.message.text,
                            rating=given.rating,
                            correction=given.correction,
                            model_version=found.message.model_version,
                            given_at=given.given_at,
                        )
                    )
        return sorted(records, key=lambda r: (r.given_at, r.feedback_id))

    def person_key(self, user: UserRef) -> str | None:
        with self._lock:
            identity = (user.platform, user.id)
            return _person_key(self._person(identity)) if identity in self._people else None

    def feedback_rates(self) -> list[VersionRates]:
        with self._lock:
            counts: dict[str, list[int]] = {}
            for answer_id, found in self._answers.items():
                row = counts.setdefault(found.message.model_version or "unknown", [0, 0, 0, 0])
                row[0] += 1
                for given in self._feedback.get(answer_id, {}).values():
                    row[1] += given.rating is Rating.GOOD
                    row[2] += given.rating is Rating.BAD
                    row[3] += given.correction is not None
        rates = [
            VersionRates(model_version=v, answers=a, good=g, bad=b, corrections=c)
            for v, (a, g, b, c) in counts.items()
        ]
        return sorted(rates, key=lambda r: (-r.answers, r.model_version))

    def feedback_for(self, answer_id: int) -> list[Feedback]:
        with self._lock:
            given = self._feedback.get(answer_id, {}).values()
            return [replace(f, user=self._known(f.user) or f.user) for f in given]

    def profile(self, user: UserRef) -> UserProfile:
        with self._lock:
            return self._profiles.get(self._person((user.platform, user.id)), UserProfile())

    def save_profile(self, user: UserRef, profile: UserProfile) -> None:
        with self._lock:
            self._remember(user)
            self._profiles[self._person((user.platform, user.id))] = replace(
                profile, preferences=dict(profile.preferences), facts=tuple(profile.facts)
            )

    def create_link_code(self, user: UserRef, ttl: timedelta = LINK_CODE_TTL) -> str:
        with self._lock:
            self._remember(user)
            person = self._person((user.platform, user.id))
            now = utcnow()
            for code, link in list(self._codes.items()):
                if link.expires_at <= now or (not link.used and self._person(link.owner) == person):
                    del self._codes[code]
            code = new_link_code()
            while code in self._codes:
                code = new_link_code()
            self._codes[code] = _LinkCode(owner=(user.platform, user.id), expires_at=now + ttl)
            return code

    def redeem_link_code(self, code: str, user: UserRef) -> UserRef | None:
        me = (user.platform, user.id)
        with self._lock:
            link = self._codes.get(normalize_link_code(code))
            if link is None or link.used or link.expires_at <= utcnow() or link.owner == me:
                return None
            link.used = True
            self._remember(user)
            person, mine = self._person(link.owner), self._person(me)
            if mine != person:
                joining = self._profiles.pop(mine, None)
                if joining is not None:
                    kept = self._profiles.get(person, UserProfile())
                    self._profiles[person] = merge_profiles(kept, joining)
                for identity in self._identities(mine):
                    self._person_of[identity] = person
            return UserRef(*link.owner, self._people[link.owner])

    def linked_identities(self, user: UserRef) -> list[UserRef]:
        me = (user.platform, user.id)
        with self._lock:
            if me not in self._people:
                return [user]
            others = [
                UserRef(platform, id, self._people[(platform, id)])
                for platform, id in self._identities(self._person(me))
                if (platform, id) != me
            ]
            return [UserRef(user.platform, user.id, self._people[me]), *others]

    def claim_event(self, platform: str, event_id: str) -> bool:
        with self._lock:
            if (platform, event_id) in self._events:
                return False
            self._events[(platform, event_id)] = utcnow()
            return True

    def release_event(self, platform: str, event_id: str) -> None:
        with self._lock:
            self._events.pop((platform, event_id), None)

    def purge_events(self, older_than: datetime) -> int:
        with self._lock:
            old = [event for event, seen in self._events.items() if seen < older_than]
            for event in old:
                del self._events[event]
            return len(old)

    def forget(self, user: UserRef) -> int:
        me = (user.platform, user.id)
        group: set[Identity] = set()

        def theirs(turn: StoredMessage) -> bool:
            return turn.user is not None and (turn.user.platform, turn.user.id) in group

        with self._lock:
            if me not in self._people:
                return 0
            person = self._person(me)
            group.update(self._identities(person))
            removed: list[int] = []
            count = 0
            mine = {t.id for ts in self._turns.values() for t in ts if theirs(t)}
            answers = {j.answer_id for j in self._jobs.values() if j.message_id in mine}
            shared: list[ConversationKey] = []
            for key, turns in list(self._turns.items()):
                if not any(theirs(t) for t in turns):
                    continue
                if any(t.user is not None and not theirs(t) for t in turns):
                    shared.append(key)
                    gone = [t for t in turns if theirs(t) or t.id in answers]
                    self._turns[key] = [t for t in turns if not (theirs(t) or t.id in answers)]
                else:  # nobody else wrote here: a private chat goes whole
                    gone = turns
                    del self._turns[key]
                    self._since.pop(key, None)
                    count += 1
                removed.extend(t.id for t in gone)
            count += len(removed)
            # Other answers in shared chats whose prompts held removed turns lose them.
            for key in shared:
                self._turns[key] = [
                    replace(t, context=None)
                    if t.context is not None
                    and any(seg.message_id in removed for seg in t.context.segments)
                    else t
                    for t in self._turns[key]
                ]
                for t in self._turns[key]:
                    if t.id in self._answers:
                        self._answers[t.id] = Answer(message=t, conversation=key)
            for message_id in removed:
                self._answers.pop(message_id, None)
                self._jobs.pop(message_id, None)
                self._tokens.pop(message_id, None)
                count += len(self._feedback.pop(message_id, {}))
            for by_user in self._feedback.values():
                for identity in group:
                    count += by_user.pop(identity, None) is not None
            for answer_and_identity in list(self._feedback_ids):
                if answer_and_identity[1] in group or answer_and_identity[0] in removed:
                    del self._feedback_ids[answer_and_identity]
            count += self._profiles.pop(person, None) is not None
            for code, link in list(self._codes.items()):
                if link.owner in group:
                    del self._codes[code]
            for identity in group:
                del self._people[identity]
                self._person_of.pop(identity, None)
            return count + len(group)

    def personal_data(self, user: UserRef) -> dict[str, Any]:
        me = (user.platform, user.id)
        with self._lock:
            if me not in self._people:
                return personal_data_json([], None, [], [])
            group = self._identities(self._person(me))
            mine = {
                t.id
                for turns in self._turns.values()
                for t in turns
                if t.user is not None and (t.user.platform, t.user.id) in group
            }
            answers = {j.answer_id for j in self._jobs.values() if j.message_id in mine}
            turns = [
                (key, self._current(t))
                for key, ts in self._turns.items()
                for t in ts
                if t.id in mine or t.id in answers
            ]
            feedback = [
                f
                for by_user in self._feedback.values()
                for who, f in by_user.items()
                if who in group
            ]
            identities = [UserRef(p, i, self._people[(p, i)]) for p, i in group]
            profile = self._profiles.get(self._person(me))
            return personal_data_json(
                identities, profile, sorted(turns, key=lambda kt: kt[1].id), feedback
            )

    def replace_text(self, message_id: int, text: str) -> bool:
        with self._lock:
            return self._replace(message_id, text=text) is not None

    def _replace(self, message_id: int, **changes: Any) -> StoredMessage | None:
        """Change a stored turn in place; the caller holds the lock."""
        for key, turns in self._turns.items():
            for i, turn in enumerate(turns):
                if turn.id == message_id:
                    turns[i] = replace(turn, **changes)
                    if message_id in self._answers:
                        self._answers[message_id] = Answer(message=turns[i], conversation=key)
                    return turns[i]
        return None

    def purge_before(self, older_than: datetime) -> int:
        with self._lock:
            count = 0
            for key, turns in list(self._turns.items()):
                old = {t.id for t in turns if t.created_at < older_than}
                if not old:
                    continue
                count += len(old)
                kept = [t for t in turns if t.id not in old]
                if kept:
                    self._turns[key] = kept
                else:
                    del self._turns[key]
                    self._since.pop(key, None)
                for message_id in old:
                    self._answers.pop(message_id, None)
                    self._jobs.pop(message_id, None)
                    self._tokens.pop(message_id, None)
                    self._feedback.pop(message_id, None)
            return count

    def usage(self, since: datetime) -> Usage:
        with self._lock:
            turns = [t for ts in self._turns.values() for t in ts if t.created_at >= since]
            asked = [t for t in turns if t.role is Role.USER]
            answers = [t for t in turns if t.role is Role.ASSISTANT]
            return Usage(
                messages=len(asked),
                answers=len(answers),
                people=len({(t.user.platform, t.user.id) for t in asked if t.user is not None}),
                blocked_answers=sum(t.blocked_reason is not None for t in answers),
            )

    def job(self, message_id: int) -> Job | None:
        with self._lock:
            return self._jobs.get(message_id)

    def claim_job(self, message_id: int, *, lease_seconds: float, max_attempts: int) -> Claim:
        now = utcnow()
        with self._lock:
            job = self._jobs.get(message_id)
            if job is None:
                return Claim(ClaimOutcome.UNKNOWN)
            if job.status is JobStatus.DONE:
                return Claim(ClaimOutcome.DONE, job)
            if job.status is JobStatus.FAILED:
                return Claim(ClaimOutcome.FAILED, job)
            if job.status is JobStatus.RUNNING and not _expired(job, now):
                return Claim(ClaimOutcome.BUSY, job)
            if self._waits(job):
                return Claim(ClaimOutcome.WAIT, job)
            if job.attempts >= max_attempts:
                error = set_aside_reason(job.attempts)
                return Claim(ClaimOutcome.SET_ASIDE, self._end(job, JobStatus.FAILED, error=error))
            token = new_job_token()
            self._tokens[message_id] = token
            self._jobs[message_id] = job = replace(
                job,
                status=JobStatus.RUNNING,
                attempts=job.attempts + 1,
                lease_until=now + timedelta(seconds=lease_seconds),
                updated_at=now,
            )
            return Claim(ClaimOutcome.CLAIMED, job, token)

    def finish_job(
        self,
        message_id: int,
        token: str,
        text: str,
        *,
        model_version: str,
        context: ContextReport | None,
        blocked_reason: str | None = None,
    ) -> StoredMessage | None:
        with self._lock:
            job = self._jobs.get(message_id)
            if job is None or not self._holds(job, token):
                return None
            stored = self._append(
                job.key, Role.ASSISTANT, text, model_version=model_version, context=context
            )
            if blocked_reason is not None:
                stored = self._replace(stored.id, blocked_reason=blocked_reason) or stored
            self._end(job, JobStatus.DONE, answer_id=stored.id)
            return stored

    def fail_job(self, message_id: int, reason: str, *, token: str | None = None) -> bool:
        with self._lock:
            job = self._jobs.get(message_id)
            if job is None or job.status.ended:
                return False
            if token is not None and not self._holds(job, token):
                return False
            self._end(job, JobStatus.FAILED, error=reason)
            return True

    def next_job(self, key: ConversationKey) -> int | None:
        with self._lock:
            return min(
                (j.message_id for j in self._jobs.values() if j.key == key and not j.status.ended),
                default=None,
            )

    def stalled_jobs(self, older_than: datetime, *, limit: int = 100) -> list[int]:
        now = utcnow()
        with self._lock:
            heads: dict[ConversationKey, Job] = {}
            for job in sorted(self._jobs.values(), key=lambda j: j.message_id):
                if not job.status.ended:
                    heads.setdefault(job.key, job)
            stalled = [
                job.message_id
                for job in heads.values()
                if (job.status is JobStatus.QUEUED and job.updated_at < older_than)
                or (job.status is JobStatus.RUNNING and _expired(job, now))
            ]
            return sorted(stalled)[: max(limit, 0)]

    def touch_job(self, message_id: int) -> None:
        with self._lock:
            job = self._jobs.get(message_id)
            if job is not None and not job.status.ended:
                self._jobs[message_id] = replace(job, updated_at=utcnow())

    def _holds(self, job: Job, token: str) -> bool:
        """Whether ``token`` holds the job: it runs under that lease, expired or not."""
        return job.status is JobStatus.RUNNING and self._tokens.get(job.message_id) == token

    def _waits(self, job: Job) -> bool:
        """Whether an earlier job of the same conversation has not ended yet."""
        return any(
            other.key == job.key and other.message_id < job.message_id and not other.status.ended
            for other in self._jobs.values()
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
        self._tokens.pop(job.message_id, None)
        ended = replace(
            job,
            status=status,
            lease_until=None,
            answer_id=answer_id,
            error=error,
            updated_at=utcnow(),
        )
        self._jobs[job.message_id] = ended
        return ended


def _person_key(person: Identity) -> str:
    return f"{person[0]}:{person[1]}"


def _expired(job: Job, now: datetime) -> bool:
    """Whether a running job's lease has run out (its runner is presumed dead)."""
    return job.lease_until is not None and job.lease_until < now
