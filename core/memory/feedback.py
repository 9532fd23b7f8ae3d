"""Feedback in memory: verdicts on answers, and the records the fine-tuning loop reads."""

from __future__ import annotations

from dataclasses import replace
from typing import Unpack

from core.feedback_data import UNTRUSTED_PLATFORMS, FeedbackRecord, FeedbackWindow, VersionRates
from core.memory.state import Identity, MemoryPart
from core.types import Feedback, Rating, UserProfile, UserRef

__all__ = ["MemoryFeedback"]


class MemoryFeedback(MemoryPart):
    """:class:`core.store.FeedbackStore` and :class:`core.feedback_data.FeedbackSource`."""

    def save_feedback(self, feedback: Feedback) -> None:
        state = self._state
        with state.lock:
            if feedback.answer_id not in state.answers:
                raise KeyError(f"no answer with id {feedback.answer_id}")
            state.remember(feedback.user)
            by_user = state.feedback.setdefault(feedback.answer_id, {})
            identity = (feedback.user.platform, feedback.user.id)
            by_user[identity] = feedback
            next_id = len(state.feedback_ids) + 1
            state.feedback_ids.setdefault((feedback.answer_id, identity), next_id)

    def feedback_for(self, answer_id: int) -> list[Feedback]:
        state = self._state
        with state.lock:
            given = state.feedback.get(answer_id, {}).values()
            return [replace(f, user=state.known(f.user) or f.user) for f in given]

    def feedback_records(self, **window: Unpack[FeedbackWindow]) -> list[FeedbackRecord]:
        since, until = window.get("since"), window.get("until")
        untrusted = window.get("untrusted_platforms", UNTRUSTED_PLATFORMS)
        records: list[FeedbackRecord] = []
        state = self._state
        with state.lock:
            for answer_id, by_user in state.feedback.items():
                found = state.answers.get(answer_id)
                if found is None or found.message.context is None:
                    continue
                if found.message.blocked_reason is not None:  # never training data
                    continue
                for identity, given in by_user.items():
                    if (since is not None and given.given_at < since) or (
                        until is not None and given.given_at >= until
                    ):
                        continue
                    person = state.person(identity)
                    records.append(
                        FeedbackRecord(
                            feedback_id=state.feedback_ids[(answer_id, identity)],
                            answer_id=answer_id,
                            person=_person_key(person),
                            platform=identity[0],
                            trusted=identity[0] not in untrusted,
                            allows_training=state.profiles.get(
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
        state = self._state
        with state.lock:
            identity = (user.platform, user.id)
            return _person_key(state.person(identity)) if identity in state.people else None

    def feedback_rates(self) -> list[VersionRates]:
        state = self._state
        with state.lock:
            counts: dict[str, list[int]] = {}
            for answer_id, found in state.answers.items():
                row = counts.setdefault(found.message.model_version or "unknown", [0, 0, 0, 0])
                row[0] += 1
                for given in state.feedback.get(answer_id, {}).values():
                    row[1] += given.rating is Rating.GOOD
                    row[2] += given.rating is Rating.BAD
                    row[3] += given.correction is not None
        rates = [
            VersionRates(model_version=v, answers=a, good=g, bad=b, corrections=c)
            for v, (a, g, b, c) in counts.items()
        ]
        return sorted(rates, key=lambda r: (-r.answers, r.model_version))


def _person_key(person: Identity) -> str:
    return f"{person[0]}:{person[1]}"
