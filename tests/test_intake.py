"""Files stored before the ack and read in their turn: order, refusals, and taking over.

In one process, through the real inbox and conversation service over the memory store: a
voice note is stored with its job and intake when it arrives; a text sent right after it
waits for it; what cannot be read ends its job with a clear reply; an intake left by a
process that died is taken over, read again, and answered, with what waited behind it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from datetime import timedelta

from bots.slack import build_slack
from core.inbox import Incoming
from core.intake import FileRef
from core.jobs import ClaimOutcome, JobStatus
from core.media import Attachment, Fetch, MediaError, MediaIntake, MediaKind, MediaLimits, Reading
from core.resume import IntakeResumer
from core.sentiment import LexiconSentimentClassifier
from core.store import Store
from core.types import Message, Reply, ReplyKind, Role, UserRef, utcnow
from tests.factories import make_inbox, make_message, make_service
from tests.fakes.slack import TEAM, FakeSlack, next_ts
from tests.slack_fixtures import settings_for
from tests.test_inbox import Screen


@dataclass
class SlowFile:
    """A file on the platform whose download waits until it is let go."""

    data: bytes = b"OggS..."
    go: asyncio.Event = field(default_factory=asyncio.Event)
    downloads: int = 0

    async def fetch(self, limit: int) -> bytes:
        self.downloads += 1
        await self.go.wait()
        return self.data


@dataclass
class Reader:
    """Hears ``heard`` in every file (or raises ``error``)."""

    heard: str = "what time is the meeting"
    error: MediaError | None = None

    async def read(self, kind: MediaKind, data: bytes, mime: str | None) -> Reading:
        if self.error is not None:
            raise self.error
        return Reading(kind=kind, text=self.heard, source="Whisper tiny.en", seconds=2.0)


def voice_note(file: SlowFile, ref: str = "file-1") -> Message:
    attachment = Attachment(kind=MediaKind.VOICE, fetch=file.fetch, ref=ref, size=100)
    return replace(make_message(""), media=("voice",), attachments=(attachment,))


def media(reader: Reader | None = None, lease: float = 60.0) -> MediaIntake:
    return MediaIntake(reader or Reader(), MediaLimits(), lease_seconds=lease)


def user_turns(store: Store, message: Message) -> list[str]:
    return [t.text for t in store.history(message.key, 20) if t.role is Role.USER]


async def test_a_text_sent_while_a_voice_note_is_read_is_answered_after_it() -> None:
    service, store, _ = make_service(media=media())
    inbox = make_inbox(service)
    file = SlowFile()
    screens = [Screen("m-voice"), Screen("m-text")]
    note = voice_note(file)
    await inbox.receive(Incoming(note, event_id="e1"), lambda _: screens[0])
    [stored] = store.history(note.key, 10)
    assert store.intake(stored.id) is not None, "stored with its intake before the ack"
    text = make_message("and tomorrow?")
    await inbox.receive(Incoming(text, event_id="e2"), lambda _: screens[1])
    await asyncio.sleep(0.05)
    assert screens[1].final is None, "the text waits for the voice note"
    claim = service.answerer._responder.claim(stored.id)  # type: ignore[attr-defined]
    assert claim.outcome is ClaimOutcome.WAIT, "no one answers a voice note not read yet"
    file.go.set()
    await inbox.drain()

    voice_reply, text_reply = (s.final for s in screens)
    assert voice_reply is not None
    assert text_reply is not None
    assert voice_reply.text.startswith("🎤 I heard: “what time is the meeting”")
    assert voice_reply.text.endswith("You said: what time is the meeting")
    assert text_reply.text == "You said: and tomorrow?"
    assert voice_reply.answer_id is not None
    assert text_reply.answer_id is not None
    assert voice_reply.answer_id < text_reply.answer_id
    assert user_turns(store, note) == ["what time is the meeting", "and tomorrow?"]
    assert store.intake(stored.id) is None, "closed once the answer is shown"


async def test_what_was_heard_is_stored_with_how_it_reads() -> None:
    sentiment = LexiconSentimentClassifier()
    heard = "this is terrible, I hate it, nothing works"
    service, store, _ = make_service(media=media(Reader(heard)), sentiment=sentiment)
    file = SlowFile()
    file.go.set()
    note = voice_note(file)
    reply = await service.handle(note).collect()
    assert reply.kind is ReplyKind.ANSWER
    [turn] = [t for t in store.history(note.key, 10) if t.role is Role.USER]
    assert turn.text == heard
    assert turn.sentiment == sentiment.classify([heard])[0]
    assert turn.sentiment is not None
    assert turn.sentiment.score < 0
    assert store.intake(turn.id) is None, "closed once answered"


async def test_a_file_that_cannot_be_read_ends_its_job_with_a_clear_reply() -> None:
    error = MediaError("I could not play your voice message.", reason="unreadable")
    service, store, _ = make_service(media=media(Reader(error=error)))
    inbox = make_inbox(service)
    file = SlowFile()
    file.go.set()
    screens = [Screen(), Screen()]
    note = voice_note(file)
    await inbox.receive(Incoming(note, event_id="e1"), lambda _: screens[0])
    assert store.job(1) is not None, "stored before the ack"
    await inbox.receive(Incoming(make_message("hello?"), event_id="e2"), lambda _: screens[1])
    await inbox.drain()

    voice_reply, text_reply = (s.final for s in screens)
    assert voice_reply == Reply(kind=ReplyKind.ERROR, text="I could not play your voice message.")
    assert text_reply is not None
    assert text_reply.text == "You said: hello?"
    assert user_turns(store, note) == ["hello?"], "nothing of a refused file is kept"
    assert store.job(1) is None
    assert store.intake(1) is None


async def test_an_intake_a_dead_process_left_is_taken_over_with_what_waited() -> None:
    service, store, _ = make_service(media=media(lease=60.0))
    # What a process that died left: a voice note (its lease run out) and a text behind it.
    note = make_message("")
    stored = store.store_with_files(
        replace(note, media=("voice",)),
        (FileRef(kind=MediaKind.VOICE, ref="file-9", size=100),),
        lease_seconds=-1,
    )
    store.append(note.key, Role.USER, "and tomorrow?", user=note.user, expects_answer=True)
    inbox = make_inbox(service)
    file = SlowFile()
    file.go.set()
    reopened: list[str] = []

    def reopen(ref: FileRef) -> Fetch:
        reopened.append(ref.ref)
        return file.fetch

    screens: list[Screen] = []

    def screen(_: Message) -> Screen:
        screens.append(Screen(f"m-{len(screens)}"))
        return screens[-1]

    resumer = IntakeResumer(inbox, "test", reopen, screen)
    assert await resumer.resume() == 1
    await inbox.drain()
    assert await resumer.resume() == 0, "taken over once"

    assert reopened == ["file-9"]
    assert file.downloads == 1
    finals = [s.final for s in screens]
    assert [f.text if f else None for f in finals] == [
        "🎤 I heard: “what time is the meeting”\n\nYou said: what time is the meeting",
        "You said: and tomorrow?",
    ]
    assert store.intake(stored.id) is None
    assert user_turns(store, note) == ["what time is the meeting", "and tomorrow?"]


async def test_the_slack_adapter_takes_over_a_clip_a_dead_process_left(slack: FakeSlack) -> None:
    service, store, _ = make_service(media=media(Reader("where is the standup")))
    clip = slack.add_file(b"m4a...", name="clip.m4a", mimetype="audio/mp4", subtype="slack_audio")
    root = next_ts()
    asked = Message(
        platform="slack",
        workspace=TEAM,
        chat="C1",
        thread=root,
        user=UserRef("slack", "U1", "Ada"),
        text="",
        message_id=root,
        is_group=True,
        mentions_bot=True,
        media=("audio",),
    )
    voice = FileRef(kind=MediaKind.VOICE, ref=clip["id"], mime="audio/mp4", size=6)
    store.store_with_files(asked, (voice,), lease_seconds=-1)
    adapter = build_slack(make_inbox(service), settings_for(slack), edit_interval=0.03)
    await adapter.start()
    try:
        for _ in range(100):
            if slack.in_thread("C1", root) and slack.in_thread("C1", root)[0].buttons:
                break
            await asyncio.sleep(0.05)
        await adapter.drain()
    finally:
        await adapter.stop()

    [shown] = slack.in_thread("C1", root)
    assert shown.shown.startswith("🎤 I heard: “where is the standup”")
    assert slack.downloads == [clip["id"]]
    assert store.in_thread(asked.key), "the thread it answered in is stored"
    assert store.stalled_intakes("slack", utcnow() + timedelta(days=1)) == []


async def test_a_reading_cut_short_by_a_stop_leaves_the_intake_to_take_over() -> None:
    service, store, _ = make_service(media=media())
    inbox = make_inbox(service)
    file = SlowFile()  # never let go: the process stops while it downloads
    note = voice_note(file)
    await inbox.receive(Incoming(note, event_id="e1"), lambda _: Screen())
    await asyncio.sleep(0.05)
    assert file.downloads == 1
    await inbox.close(grace=0.1)

    [stored] = store.history(note.key, 10)
    intake = store.intake(stored.id)
    assert intake is not None
    assert not intake.read
    job = store.job(stored.id)
    assert job is not None
    assert job.status is JobStatus.QUEUED, "neither failed nor answered: still owed"
