"""Slash-command parsing."""

from __future__ import annotations

import pytest

from core.commands import (
    Command,
    FeedbackArgs,
    ProfileArgs,
    parse_command,
    parse_feedback,
    parse_profile,
)
from core.types import Rating


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/help", Command("help", "")),
        ("/Feedback  bad  it is Paris ", Command("feedback", "bad  it is Paris")),
        ("/explain@ParleyBot", Command("explain", "")),
        ("hello /help", None),
        ("//not a command", None),
        ("/", None),
        ("/@bot", None),
    ],
)
def test_parse_command(text: str, expected: Command | None) -> None:
    assert parse_command(text) == expected


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ("good", FeedbackArgs(Rating.GOOD, None)),
        ("👎 The answer is 4.", FeedbackArgs(Rating.BAD, "The answer is 4.")),
        ("BAD   ", FeedbackArgs(Rating.BAD, None)),
        ("", None),
        ("great", None),
    ],
)
def test_parse_feedback(args: str, expected: FeedbackArgs | None) -> None:
    assert parse_feedback(args) == expected


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ("", ProfileArgs("show")),
        ("name Ada Lovelace", ProfileArgs("set", "name", "Ada Lovelace")),
        ("LENGTH short", ProfileArgs("set", "length", "short")),
        ("clear", ProfileArgs("clear")),
        ("clear tone", ProfileArgs("clear", "tone")),
        ("clear shoes", None),
        ("name", None),
        ("shoe 9", None),
        ("learning OFF", ProfileArgs("learning", value="off")),
        ("learning maybe", None),
        ("fact I have two cats", ProfileArgs("fact", value="I have two cats")),
        ("forget 2", ProfileArgs("forget", value="2")),
        ("forget two", None),
    ],
)
def test_parse_profile(args: str, expected: ProfileArgs | None) -> None:
    assert parse_profile(args) == expected
