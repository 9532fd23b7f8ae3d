"""Intakes and threads in memory: :class:`core.intake.IntakeStore` and ``ThreadStore``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from core.intake import FileRef, Intake
from core.jobs import JobStatus
from core.memory.state import MemoryPart
from core.sentiment import Sentiment
from core.types import ConversationKey, Message, Role, StoredMessage, utcnow

__all__ = ["MemoryIntakes", "MemoryThreads"]


def _until(lease_seconds: float) -> datetime:
    return utcnow() + timedelta(seconds=lease_seconds)


class MemoryIntakes(MemoryPart):
    """:class:`core.intake.IntakeStore` in memory (the message is stored by ``append``)."""

    append: Callable[..., StoredMessage]
    """:meth:`core.memory.messages.MemoryConversations.append`, a sibling part's."""

    def store_with_files(
        self, message: Message, files: tuple[FileRef, ...], lease_seconds: float
    ) -> StoredMessage:
        kept = replace(message, attachments=())
        stored = self.append(
            message.key,
            Role.USER,
            message.text.strip(),
            user=message.user,
            platform_message_id=message.message_id,
            expects_answer=True,
            in_group=message.is_group,
        )
        with self._state.lock:
            self._state.intakes[stored.id] = Intake(
                message_id=stored.id,
                message=kept,
                files=files,
                lease_until=_until(lease_seconds),
                created_at=utcnow(),
            )
        return stored

    def intake(self, message_id: int) -> Intake | None:
        with self._state.lock:
            return self._state.intakes.get(message_id)

    def renew_intake(self, message_id: int, lease_seconds: float) -> None:
        self._change(message_id, lease_until=_until(lease_seconds))

    def take_intake(self, message_id: int, lease_seconds: float) -> bool:
        with self._state.lock:
            found = self._state.intakes.get(message_id)
            if found is None or (found.lease_until is not None and found.lease_until >= utcnow()):
                return False
            self._state.intakes[message_id] = replace(found, lease_until=_until(lease_seconds))
            return True

    def intake_read(self, message_id: int, text: str, sentiment: Sentiment | None) -> None:
        state = self._state
        with state.lock:
            state.replace_turn(message_id, text=text, sentiment=sentiment)
            found = state.intakes.get(message_id)
            if found is not None:
                state.intakes[message_id] = replace(found, read=True)

    def close_intake(self, message_id: int) -> None:
        with self._state.lock:
            self._state.intakes.pop(message_id, None)

    def discard_intake(self, message_id: int) -> None:
        state = self._state
        with state.lock:
            for turns in state.turns.values():
                turns[:] = [turn for turn in turns if turn.id != message_id]
            state.drop_turns({message_id})

    def stalled_intakes(self, platform: str, now: datetime, *, limit: int = 100) -> list[Intake]:
        with self._state.lock:
            stalled = [
                intake
                for intake in self._state.intakes.values()
                if intake.message.platform == platform
                and (intake.lease_until is None or intake.lease_until < now)
            ]
        return sorted(stalled, key=lambda intake: intake.message_id)[:limit]

    def waiting_after(
        self, key: ConversationKey, message_id: int, *, limit: int = 100
    ) -> list[int]:
        state = self._state
        with state.lock:
            waiting = []
            for job in sorted(state.jobs.values(), key=lambda job: job.message_id):
                if job.key != key or job.message_id <= message_id:
                    continue
                answer = state.answers.get(job.answer_id or 0)
                undelivered = answer is not None and answer.message.platform_message_id is None
                if not job.status.ended or (job.status is JobStatus.DONE and undelivered):
                    waiting.append(job.message_id)
            return waiting[:limit]

    def _change(self, message_id: int, **changes: object) -> None:
        with self._state.lock:
            found = self._state.intakes.get(message_id)
            if found is not None:
                self._state.intakes[message_id] = replace(found, **changes)  # type: ignore[arg-type]


class MemoryThreads(MemoryPart):
    """:class:`core.intake.ThreadStore` in memory."""

    def join_thread(self, key: ConversationKey) -> None:
        with self._state.lock:
            self._state.threads.add(key)

    def in_thread(self, key: ConversationKey) -> bool:
        with self._state.lock:
            return key in self._state.threads
