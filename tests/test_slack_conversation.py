"""People talk with Parley on Slack: DMs, threads, buttons, /parley commands."""

from __future__ import annotations

from core.types import ConversationKey, Rating, Role
from tests.fakes.slack import (
    BOT_USER,
    TEAM,
    FakeSlack,
    app_mention,
    dm,
    next_ts,
)
from tests.slack_fixtures import (
    BAD,
    GOOD,
    PacedGenerator,
    assert_no_repeated_edits,
    harness,
)

# ---- conversations ----------------------------------------------------------------------


async def test_a_dm_conversation_streams_and_ends_with_buttons(slack: FakeSlack) -> None:
    answers = [" ".join(f"answer{turn}-word{i}" for i in range(12)) for turn in range(5)]
    h = harness(slack, generator=PacedGenerator(replies=list(answers), delay=0.01))
    for turn in range(5):
        response = await h.send(dm(f"question {turn}"))
        assert response.status_code == 200
        shown = h.slack.in_thread("D1", None)
        assert len(shown) == turn + 1, "one message per answer"
        latest = shown[-1]
        assert latest.shown == answers[turn]
        assert latest.edits >= 2, "the answer grew in place"
        assert [b["action_id"] for b in latest.buttons] == [GOOD, BAD]
        assert latest.args["unfurl_links"] is False
        assert latest.args["unfurl_media"] is False
    assert_no_repeated_edits(h.slack)
    assert len(h.history()) == 10
    # The fifth question was asked with the four earlier exchanges as context.
    assert "answer3-word0" in " ".join(t.content for t in h.generator.requests[-1].turns)
    # Each shown answer is recorded as its platform message.
    last = h.store.history(ConversationKey("slack", TEAM, "D1", None), 1)[0]
    assert last.platform_message_id == h.slack.in_thread("D1", None)[-1].ts


async def test_buttons_record_feedback(slack: FakeSlack) -> None:
    h = harness(slack, replies=["Paris is the capital."])
    await h.send(dm("capital of France?"))
    (answer,) = h.slack.in_thread("D1", None)
    answer_id = int(answer.buttons[0]["value"])

    assert (await h.press(answer, GOOD)).status_code == 200
    assert [(f.user.id, f.rating) for f in h.store.feedback_for(answer_id)] == [("U1", Rating.GOOD)]
    await h.press(answer, BAD)  # the same person changes their mind
    await h.press(answer, GOOD, user="U2")
    ratings = sorted((f.user.id, f.rating) for f in h.store.feedback_for(answer_id))
    assert ratings == [("U1", Rating.BAD), ("U2", Rating.GOOD)]
    confirmations = [(e["user"], e["channel"], e["text"]) for e in h.slack.ephemeral]
    assert len(confirmations) == 3
    assert confirmations[0][:2] == ("U1", "D1")
    assert "helpful" in confirmations[0][2]
    assert "not good" in confirmations[1][2]


async def test_parley_slash_commands(slack: FakeSlack) -> None:
    h = harness(slack, replies=["The answer."])
    await h.send(dm("a question"))
    assert (await h.command("explain")).status_code == 200
    assert (await h.command("")).status_code == 200
    await h.command("feedback bad It is 42.")
    await h.command("frobnicate")
    texts = [body["text"] for _, body in h.slack.responses]
    assert all(body["response_type"] == "ephemeral" for _, body in h.slack.responses)
    explain, help_text, feedback, unknown = texts
    assert "prompt tokens" in explain
    assert "/parley explain" in help_text
    assert "/parley reset" in help_text
    assert "correction" in feedback
    assert "/frobnicate" in unknown
    (answer,) = h.slack.in_thread("D1", None)
    feedback_given = h.store.feedback_for(int(answer.buttons[0]["value"]))
    assert [(f.rating, f.correction) for f in feedback_given] == [(Rating.BAD, "It is 42.")]
    assert len(h.slack.posted()) == 1, "commands answer only the person, never the channel"


async def test_a_mention_is_answered_in_its_thread_and_the_thread_continues(
    slack: FakeSlack,
) -> None:
    h = harness(slack, replies=["First answer.", "Second answer."])
    mention = app_mention(f"<@{BOT_USER}> what is up?")
    await h.send(mention)
    # Slack also delivers the mention as a plain channel message: answered once only.
    await h.send({**mention, "type": "message", "channel_type": "channel"})
    root = mention["ts"]
    assert [m.shown for m in h.slack.in_thread("C1", root)] == ["First answer."]
    assert h.slack.in_thread("C1", None) == []
    # In a channel each turn names its speaker, as Slack shows them (users.info).
    assert h.generator.requests[0].turns[-1].content == "Ada: what is up?"

    follow_up = {**dm("and why?", channel="C1"), "channel_type": "channel", "thread_ts": root}
    await h.send(follow_up)
    assert [m.shown for m in h.slack.in_thread("C1", root)] == ["First answer.", "Second answer."]
    assert h.history("C1", root) == [
        (Role.USER, "what is up?"),
        (Role.ASSISTANT, "First answer."),
        (Role.USER, "and why?"),
        (Role.ASSISTANT, "Second answer."),
    ]
    # /parley carries no thread: in a channel it acts on the person's latest thread.
    await h.command("explain", channel="C1")
    ((_, explained),) = h.slack.responses
    assert "prompt tokens" in explained["text"]
    # Chatter that does not address Parley is left alone.
    await h.send({**dm("lunch?", channel="C1"), "channel_type": "channel"})
    other = {**dm("hm", channel="C1"), "channel_type": "channel", "thread_ts": next_ts()}
    await h.send(other)
    assert len(h.slack.posted("C1")) == 2


async def test_a_retried_event_is_answered_once(slack: FakeSlack) -> None:
    h = harness(slack)
    event = dm("hello")
    first = await h.send(event, event_id="EvRETRY1")
    retry = await h.send(event, event_id="EvRETRY1", retry_num=1)
    assert (first.status_code, retry.status_code) == (200, 200)
    assert len(h.slack.posted()) == 1
    assert len(h.history()) == 2


async def test_a_retry_whose_original_was_never_processed_is_answered(slack: FakeSlack) -> None:
    h = harness(slack)
    response = await h.send(dm("are you there?"), event_id="EvLOST", retry_num=2)
    assert response.status_code == 200
    assert [m.shown for m in h.slack.posted()] == ["You said: are you there?"]


# ---- the done criterion -----------------------------------------------------------------


async def test_a_scripted_user_talks_rates_and_asks_for_an_explanation(slack: FakeSlack) -> None:
    answers = [f"Answer number {i}: " + " ".join(f"w{j}" for j in range(15)) for i in range(5)]
    h = harness(slack, generator=PacedGenerator(replies=list(answers), delay=0.005))
    accepted = 0
    for i in range(5):
        event = dm(f"Question {i}?")
        response = await h.send(event, event_id=f"EvTALK{i}")
        accepted += response.status_code == 200
        if i == 2:  # Slack thought Parley was slow and delivered this one again
            retry = await h.send(event, event_id=f"EvTALK{i}", retry_num=1)
            assert retry.status_code == 200
    answers_shown = h.slack.in_thread("D1", None)
    await h.press(answers_shown[0], GOOD)
    await h.press(answers_shown[3], BAD)
    await h.command("explain")

    assert accepted == 5
    assert [m.shown for m in answers_shown] == answers, "exactly one answer per message"
    assert all(m.buttons for m in answers_shown)
    assert all(m.edits >= 1 for m in answers_shown), "every answer was streamed"
    assert_no_repeated_edits(h.slack)
    assert len(h.slack.ephemeral) == 2
    first_id = int(answers_shown[0].buttons[0]["value"])
    assert [f.rating for f in h.store.feedback_for(first_id)] == [Rating.GOOD]
    ((_, explained),) = h.slack.responses
    assert "prompt tokens" in explained["text"]
