"""Slack rendering, splitting and event translation: pure functions, no server."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bots.slack.events import LastThreads, ThreadMemory, command_message, translate_event
from bots.slack.render import FENCE, answer_blocks, split_mrkdwn, to_mrkdwn
from core.types import ConversationKey, Message, UserRef

BOT = "U0PARLEY"


# ---- rendering ------------------------------------------------------------------------------


def test_nothing_from_the_model_becomes_slack_markup() -> None:
    text = to_mrkdwn(
        "Hi <!channel> <!here|here> <!everyone> <@U123> <#C1> <!subteam^S1> "
        "<https://evil.example|your bank> & @everyone @channel @Here"
    )
    assert "<" not in text
    assert ">" not in text
    assert "&lt;!channel&gt;" in text
    assert "&lt;https://evil.example|your bank&gt;" in text
    assert "&amp;" in text
    assert not re.search(r"@(everyone|channel|here)", text, re.IGNORECASE)
    assert "@\u200beveryone" in text


def test_simple_markdown_becomes_mrkdwn() -> None:
    markdown = (
        "# Title\n"
        "Some **bold**, __also bold__, *italic* and ~~gone~~ text; 2 * 3 * 4 stays.\n"
        "- one\n"
        "* two\n"
        "See [the docs](https://docs.example/a?b=1&c=2) or https://plain.example"
    )
    assert to_mrkdwn(markdown).split("\n") == [
        "*Title*",
        "Some *bold*, *also bold*, _italic_ and ~gone~ text; 2 * 3 * 4 stays.",
        "• one",
        "• two",
        "See the docs (https://docs.example/a?b=1&amp;c=2) or https://plain.example",
    ]


def test_code_is_escaped_but_not_converted() -> None:
    markdown = "Use `**x** <y>` here.\n```python\nif a < b and **c**:\n    pass\n```\nDone **ok**"
    assert to_mrkdwn(markdown).split("\n") == [
        "Use `**x** &lt;y&gt;` here.",
        FENCE,
        "if a &lt; b and **c**:",
        "    pass",
        FENCE,
        "Done *ok*",
    ]


def test_answer_blocks_carry_the_buttons_and_stay_verbatim() -> None:
    blocks = answer_blocks("hello", 42)
    assert blocks[0]["text"] == {"type": "mrkdwn", "text": "hello", "verbatim": True}
    buttons = blocks[1]["elements"]
    assert [(b["action_id"], b["value"]) for b in buttons] == [
        ("parley_feedback_good", "42"),
        ("parley_feedback_bad", "42"),
    ]
    assert len(answer_blocks("hello")) == 1


# ---- splitting ------------------------------------------------------------------------------


def test_short_text_is_one_message_and_empty_text_a_placeholder() -> None:
    assert split_mrkdwn("one\n\ntwo") == ["one\n\ntwo"]
    assert split_mrkdwn("") == ["…"]


def test_splits_fall_between_paragraphs() -> None:
    paragraphs = [f"{i} " + "word " * 150 for i in range(20)]
    text = "\n\n".join(p.strip() for p in paragraphs)
    parts = split_mrkdwn(text, 2000)
    assert len(parts) > 1
    assert all(len(part) <= 2000 for part in parts)
    assert "\n\n".join(parts) == text


def test_a_long_code_block_is_closed_and_reopened() -> None:
    code = "\n".join(f"line_{i} = {i} &amp; {i}" for i in range(400))
    text = f"Here:\n\n{FENCE}\n{code}\n{FENCE}\n\nThat was it."
    parts = split_mrkdwn(text, 1000)
    assert len(parts) > 3
    for part in parts:
        assert len(part) <= 1000
        assert part.count(FENCE) % 2 == 0, part
    shown = "\n".join(parts)
    assert all(f"line_{i} = {i} &amp; {i}" in shown for i in range(400))


def test_a_long_line_breaks_between_words_and_never_inside_an_entity() -> None:
    assert split_mrkdwn("word " * 1000, 300)[0].endswith("word")
    parts = split_mrkdwn("&amp;" * 1000, 298)
    assert all(len(p) <= 298 for p in parts)
    assert "".join(parts) == "&amp;" * 1000


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(alphabet="ab &<>*`\n", max_size=400),
            st.just(FENCE),
            st.just("\n\n"),
            st.text(alphabet="xyz ", min_size=500, max_size=2500),
        ),
        max_size=12,
    )
)
def test_every_part_fits_and_keeps_fences_balanced(pieces: list[str]) -> None:
    rendered = to_mrkdwn("".join(pieces))
    parts = split_mrkdwn(rendered, 600)
    assert all(0 < len(part) <= 600 for part in parts)
    assert all(not re.search(r"&[a-z]{0,3}$", part) for part in parts)
    # Only whitespace and fence markers are added or dropped by splitting.
    squeeze = re.compile(r"\s+|`")
    assert squeeze.sub("", "".join(parts)) == squeeze.sub("", rendered) or rendered.strip() == ""


# ---- translation ----------------------------------------------------------------------------


def envelope(event: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "event_callback", "team_id": "T1", "event_id": "Ev1", "event": event}


def test_a_direct_message() -> None:
    event = {
        "type": "message",
        "channel_type": "im",
        "channel": "D1",
        "user": "U1",
        "text": "a &lt; b &amp;&amp; <@U0PARLEY> hi",
        "ts": "1700000000.000100",
    }
    message = translate_event(envelope(event), bot_user_id=BOT, threads=ThreadMemory())
    assert message is not None
    assert message.key == ConversationKey("slack", "T1", "D1", None)
    assert message.text == "a < b && hi"
    assert not message.is_group
    assert message.message_id == "1700000000.000100"
    assert message.sent_at.timestamp() == 1700000000.0001


def test_a_mention_starts_a_thread_and_the_duplicate_message_event_is_dropped() -> None:
    threads = ThreadMemory()
    mention = {
        "type": "app_mention",
        "channel": "C1",
        "user": "U1",
        "text": "<@U0PARLEY> yo",
        "ts": "5.0",
    }
    message = translate_event(envelope(mention), bot_user_id=BOT, threads=threads)
    assert message is not None
    assert (message.thread, message.text, message.is_group, message.mentions_bot) == (
        "5.0",
        "yo",
        True,
        True,
    )
    twin = {**mention, "type": "message", "channel_type": "channel"}
    assert translate_event(envelope(twin), bot_user_id=BOT, threads=threads) is None
    in_thread = {**mention, "ts": "6.0", "thread_ts": "5.0"}
    again = translate_event(envelope(in_thread), bot_user_id=BOT, threads=threads)
    assert again is not None
    assert again.thread == "5.0"


def test_a_thread_reply_is_to_parley_only_in_its_threads() -> None:
    threads = ThreadMemory()
    reply = {
        "type": "message",
        "channel_type": "channel",
        "channel": "C1",
        "user": "U1",
        "text": "and then?",
        "ts": "7.0",
        "thread_ts": "5.0",
    }
    message = translate_event(envelope(reply), bot_user_id=BOT, threads=threads)
    assert message is not None
    assert not message.reply_to_bot
    threads.add(message.key)
    message = translate_event(envelope(reply), bot_user_id=BOT, threads=threads)
    assert message is not None
    assert message.reply_to_bot
    top = {**reply, "thread_ts": None}
    message = translate_event(envelope(top), bot_user_id=BOT, threads=threads)
    assert message is not None
    assert not message.reply_to_bot
    assert message.thread is None


def test_bots_edits_and_other_subtypes_are_not_translated() -> None:
    base = {
        "type": "message",
        "channel_type": "im",
        "channel": "D1",
        "user": "U1",
        "text": "x",
        "ts": "1.0",
    }
    ignored: list[dict[str, Any]] = [
        {**base, "bot_id": "B9"},
        {**base, "subtype": "bot_message"},
        {**base, "user": BOT},
        {**base, "subtype": "message_changed"},
        {**base, "subtype": "message_deleted"},
        {**base, "subtype": "channel_join"},
        {**base, "user": None},
        {"type": "reaction_added", "user": "U1"},
        {**base, "type": "app_mention"},  # in a DM the message.im event carries it
    ]
    for event in ignored:
        assert translate_event(envelope(event), bot_user_id=BOT, threads=ThreadMemory()) is None
    assert (
        translate_event(
            {"type": "event_callback", "event": "x"}, bot_user_id=BOT, threads=ThreadMemory()
        )
        is None
    )
    shared = translate_event(
        envelope({**base, "subtype": "file_share", "files": [{"id": "F1"}]}),
        bot_user_id=BOT,
        threads=ThreadMemory(),
    )
    assert shared is not None
    assert shared.media == ("file",)
    assert shared.text == "x"


def test_slash_commands_become_core_commands() -> None:
    last = LastThreads()

    def translate(args: str, channel: str = "D1") -> Message | None:
        command = {
            "user_id": "U1",
            "user_name": "ada",
            "channel_id": channel,
            "team_id": "T1",
            "text": args,
        }
        return command_message(command, last)

    def text(args: str) -> str | None:
        message = translate(args)
        return None if message is None else message.text

    assert text("") == "/help"
    assert text("explain") == "/explain"
    assert text("/reset") == "/reset"
    assert text("feedback bad It is &lt;b&gt;") == "/feedback bad It is <b>"
    assert command_message({"text": "help"}, last) is None
    # In a channel, a command acts on the person's latest thread with Parley.
    in_channel = translate("explain", "C1")
    assert in_channel is not None
    assert (in_channel.thread, in_channel.is_group) == (None, True)
    last.note(
        Message(
            platform="slack",
            workspace="T1",
            chat="C1",
            thread="5.0",
            user=UserRef("slack", "U1"),
            text="hi",
            is_group=True,
        )
    )
    in_channel = translate("explain", "C1")
    assert in_channel is not None
    assert in_channel.thread == "5.0"
    in_dm = translate("explain")
    assert in_dm is not None
    assert in_dm.thread is None
