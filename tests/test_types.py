"""The shared vocabulary: conversation keys never collide, reports survive storage."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.types import ChatTurn, ContextReport, ConversationKey, Role, Segment

ids = st.one_of(st.none(), st.text(max_size=8))
keys = st.builds(ConversationKey, st.text(max_size=8), ids, st.text(max_size=8), ids)


@given(keys, keys)
def test_different_keys_never_share_an_encoding(a: ConversationKey, b: ConversationKey) -> None:
    assert (a.encode() == b.encode()) == (a == b)


@given(keys)
def test_key_encoding_round_trips(key: ConversationKey) -> None:
    assert ConversationKey.decode(key.encode()) == key


def test_separators_inside_ids_cannot_shift_fields() -> None:
    a = ConversationKey("slack", "T1", "C1:thread", None)
    b = ConversationKey("slack", "T1", "C1", "thread")
    c = ConversationKey("slack", None, "C1", "")
    d = ConversationKey("slack", "", "C1", None)
    assert len({a.encode(), b.encode(), c.encode(), d.encode()}) == 4


def test_context_report_json_round_trip() -> None:
    report = ContextReport(
        turns=(ChatTurn(Role.SYSTEM, "be nice"), ChatTurn(Role.USER, "hi")),
        segments=(Segment(kind="turn", label="user: hi", tokens=4, included=False, message_id=3),),
        prompt_tokens=12,
        budget_tokens=100,
        dropped_turns=1,
    )
    assert ContextReport.from_json(report.to_json()) == report
