"""Intakes and threads in every store: memory, SQLite and PostgreSQL behave the same.

An intake is stored with its message and answer job in one go, leased to the process that
accepted it; once the lease runs out exactly one other process takes it over; it is read,
then closed, and forgotten with its message. Threads are joined once and known after.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from core.intake import FileRef
from core.jobs import JobStatus
from core.media import MediaKind
from core.sentiment import Mood, Sentiment
from core.store import Store
from core.types import ConversationKey, Message, Role, UserRef, utcnow
from tests.store_fixtures import together

ADA = UserRef("telegram", "7", "Ada")
VOICE = FileRef(kind=MediaKind.VOICE, ref="file-42", mime="audio/ogg", size=5120, duration=3.0)
PHOTO = FileRef(kind=MediaKind.IMAGE, ref="F0PHOTO", mime="image/png", size=800, name="a.png")


def voice_note(chat: str = "7", caption: str = "") -> Message:
    return Message(
        platform="telegram",
        chat=chat,
        user=ADA,
        text=caption,
        message_id="1001",
        sent_at=datetime(2026, 12, 5, 11, 0, tzinfo=UTC),
        is_group=chat.startswith("-"),
        media=("voice",),
    )


def later(seconds: float = 3600) -> datetime:
    return utcnow() + timedelta(seconds=seconds)


def test_a_message_with_files_is_stored_with_its_job_and_intake(store: Store) -> None:
    message = voice_note(caption=" listen ")
    stored = store.store_with_files(message, (VOICE, PHOTO), lease_seconds=60)
    assert stored.role is Role.USER
    assert stored.text == "listen"
    assert store.history(message.key, 10) == [stored]
    job = store.job(stored.id)
    assert job is not None
    assert (job.status, job.key, job.in_group) == (JobStatus.QUEUED, message.key, False)
    intake = store.intake(stored.id)
    assert intake is not None
    assert intake.message == message
    assert intake.files == (VOICE, PHOTO)
    assert not intake.read
    assert intake.lease_until is not None
    assert utcnow() + timedelta(seconds=50) < intake.lease_until < later(70)


def test_only_an_intake_whose_lease_ran_out_is_taken_over_and_only_once(store: Store) -> None:
    live = store.store_with_files(voice_note("7"), (VOICE,), lease_seconds=60)
    dead = store.store_with_files(voice_note("-100"), (VOICE,), lease_seconds=-1)
    slack = replace(voice_note("C1"), platform="slack", user=UserRef("slack", "U1", None))
    store.store_with_files(slack, (PHOTO,), lease_seconds=-1)

    [stalled] = store.stalled_intakes("telegram", utcnow())
    assert stalled.message_id == dead.id
    assert stalled.message.is_group
    assert not store.take_intake(live.id, 60), "its process is alive"
    assert sum(together(8, lambda _: store.take_intake(dead.id, 60)).values()) == 1
    assert store.stalled_intakes("telegram", utcnow()) == []
    assert [i.message_id for i in store.stalled_intakes("telegram", later(120))] == [
        live.id,
        dead.id,
    ]


def test_a_renewed_intake_stays_with_its_process(store: Store) -> None:
    stored = store.store_with_files(voice_note(), (VOICE,), lease_seconds=-1)
    store.renew_intake(stored.id, 60)
    assert store.stalled_intakes("telegram", utcnow()) == []
    assert not store.take_intake(stored.id, 60)


def test_an_intake_is_read_then_closed(store: Store) -> None:
    stored = store.store_with_files(voice_note(), (VOICE,), lease_seconds=60)
    reading = Sentiment(Mood.POSITIVE, 0.8, 0.9)
    store.intake_read(stored.id, "what time is the meeting", reading)
    intake = store.intake(stored.id)
    assert intake is not None
    assert intake.read
    [turn] = store.history(voice_note().key, 10)
    assert (turn.text, turn.sentiment) == ("what time is the meeting", reading)
    store.close_intake(stored.id)
    assert store.intake(stored.id) is None
    assert store.stalled_intakes("telegram", later()) == []
    store.close_intake(stored.id)  # closing twice changes nothing


def test_an_intake_is_forgotten_with_its_message(store: Store) -> None:
    stored = store.store_with_files(voice_note(), (VOICE,), lease_seconds=-1)
    assert store.forget(ADA) > 0
    assert store.intake(stored.id) is None
    assert store.stalled_intakes("telegram", later()) == []


def test_threads_are_joined_once_and_known_after(store: Store) -> None:
    thread = ConversationKey("slack", "T1", "C1", "1700000000.000100")
    other = ConversationKey("slack", "T1", "C1", "1700000000.000200")
    assert not store.in_thread(thread)
    store.join_thread(thread)
    store.join_thread(thread)
    assert store.in_thread(thread)
    assert not store.in_thread(other)
    assert not store.in_thread(ConversationKey("slack", "T2", "C1", "1700000000.000100"))


def test_a_discarded_intake_takes_its_message_and_job_along(store: Store) -> None:
    kept = store.append(voice_note().key, Role.USER, "before", user=ADA, expects_answer=True)
    stored = store.store_with_files(voice_note(), (VOICE,), lease_seconds=60)
    store.discard_intake(stored.id)
    assert store.history(voice_note().key, 10) == [kept]
    assert store.job(stored.id) is None
    assert store.intake(stored.id) is None
    assert store.next_job(voice_note().key) == kept.id


def test_the_messages_waiting_behind_are_those_whose_answer_was_not_shown(store: Store) -> None:
    key = voice_note().key
    first, second, third = (
        store.append(key, Role.USER, text, user=ADA, expects_answer=True)
        for text in ("one", "two", "three")
    )
    store.append(voice_note("8").key, Role.USER, "elsewhere", user=ADA, expects_answer=True)
    answers = {}
    for asked in (first, second):
        claim = store.claim_job(asked.id, lease_seconds=60, max_attempts=3)
        assert claim.token is not None
        answers[asked.id] = store.finish_job(
            asked.id, claim.token, f"answer to {asked.text}", model_version="v", context=None
        )
    shown = answers[first.id]
    assert shown is not None
    store.mark_delivered(shown.id, "m-1")
    assert store.waiting_after(key, 0) == [second.id, third.id]
    assert store.waiting_after(key, second.id) == [third.id]
    assert store.waiting_after(key, 0, limit=1) == [second.id]
    answer = answers[second.id]
    assert answer is not None
    store.mark_delivered(answer.id, "m-2")
    store.fail_job(third.id, "gave up")
    assert store.waiting_after(key, 0) == []
