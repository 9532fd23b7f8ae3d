"""Personal data is found and replaced; ordinary numbers and words are left alone."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.redaction import find_personal_data, redact

REDACTED = [
    ("Write to ada.lovelace+parley@example.co.uk today", "Write to [email] today"),
    ("Call me on +44 20 7946 0958.", "Call me on [phone]."),
    ("my number is (555) 123-4567", "my number is [phone]"),
    ("office: 030 1234 5678", "office: [phone]"),
    ("Card 4111 1111 1111 1111 exp 12/29", "Card [card] exp 12/29"),
    ("amex 3782-822463-10005", "amex [card]"),
    ("pay to GB82 WEST 1234 5698 7654 32 please", "pay to [iban] please"),
    ("DE89370400440532013000", "[iban]"),
    ("key sk-proj-abcdefghijklmnop1234 leaked", "key [secret] leaked"),
    ("slack xoxb-123456789012-abcdefghijkl", "slack [secret]"),
    ("bot 123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1", "bot [secret]"),
    ("aws AKIAIOSFODNN7EXAMPLE", "aws [secret]"),
    ("gh ghp_abcdefghijklmnopqrstuvwxyz0123456789", "gh [secret]"),
    ("password: hunter2hunter2 thanks", "password: [secret] thanks"),
    (
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
        "jwt [secret]",
    ),
]

KEPT = [
    "The meeting is on 2026-11-29 at 10:30.",
    "It costs 1234.56 dollars, version 1.2.3, server 192.168.0.1",
    "Order 4111 1111 1111 1112 (not a valid card number)",
    "Ticket 12345678901 is closed",
    "I was born in 1990 and I have 3 cats.",
    "See https://example.org/docs?page=2",
]


@pytest.mark.parametrize(("text", "expected"), REDACTED)
def test_personal_data_is_replaced_by_its_kind(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize("text", KEPT)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text, find_personal_data(text)


def test_findings_are_ordered_and_do_not_overlap() -> None:
    text = "ada@example.org, +1 415 555 2671, 4111111111111111"
    findings = find_personal_data(text)
    assert [f.kind for f in findings] == ["email", "phone", "card"]
    assert all(a.end <= b.start for a, b in itertools.pairwise(findings))


@given(st.text(max_size=300))
def test_redaction_is_idempotent_and_never_crashes(text: str) -> None:
    once = redact(text)
    assert redact(once) == once
