"""Splitting long replies for platforms that cap message length (bots/text.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bots.text import FENCE, split_text, utf16_len


def fence_lines(part: str) -> list[str]:
    return [line.strip() for line in part.split("\n") if line.strip().startswith(FENCE)]


def content(text: str) -> str:
    """The text without fences and whitespace: what no split may lose or add."""
    return "".join(text.split()).replace("```py", "").replace(FENCE, "")


def test_utf16_len_counts_astral_characters_twice() -> None:
    assert utf16_len("abc") == 3
    assert utf16_len("é") == 1
    assert utf16_len("👍") == 2
    assert utf16_len("a👍b") == 4


def test_short_text_is_one_part_and_blank_text_none() -> None:
    assert split_text("  hello\n", 100) == ["hello"]
    assert split_text(" \n\n ", 100) == []


def test_cuts_at_paragraphs_before_lines_and_words() -> None:
    paragraphs = ["A" * 30 + " " + "a" * 30, "B" * 20 + "\n" + "b" * 20, "C" * 40]
    parts = split_text("\n\n".join(paragraphs), 70)
    assert parts == paragraphs


def test_cuts_at_lines_then_words_when_a_paragraph_is_too_long() -> None:
    lines = ["x" * 40, "y" * 40]
    assert split_text("\n".join(lines), 60) == lines
    words = " ".join(["word"] * 30)
    parts = split_text(words, 50)
    assert all(len(p) <= 50 and not p.startswith(" ") for p in parts)
    assert " ".join(parts) == words


def test_a_word_longer_than_the_limit_is_cut_hard() -> None:
    parts = split_text("z" * 100, 40)
    assert parts == ["z" * 40, "z" * 40, "z" * 20]


def test_counts_in_the_given_units() -> None:
    text = "👍" * 30  # 60 UTF-16 units
    parts = split_text(text, 32, measure=utf16_len)
    assert [utf16_len(p) for p in parts] == [32, 28]
    assert "".join(parts) == text


def test_a_fence_that_fits_in_a_part_is_kept_whole() -> None:
    code = "```python\n" + "\n".join(f"x{i} = {i}" for i in range(8)) + "\n```"
    text = "Intro paragraph " + "i" * 40 + "\n\n" + code + "\n\nAfter."
    parts = split_text(text, len(code) + 5)
    assert code in parts


def test_a_long_fence_is_closed_and_reopened_with_its_language() -> None:
    code_lines = [f"    line_{i} = compute({i})" for i in range(40)]
    text = "Here:\n\n```python\n" + "\n".join(code_lines) + "\n```\n\nDone."
    parts = split_text(text, 200)
    assert len(parts) > 3
    for part in parts:
        assert len(part) <= 200
        assert len(fence_lines(part)) % 2 == 0, part
    middle = [p for p in parts if "line_" in p]
    assert all(p.startswith("```python\n") and p.endswith("\n```") for p in middle[:-1])
    assert middle[-1].startswith("```python\n")
    assert middle[-1].endswith("\n```\n\nDone.")
    # Indentation inside the code survives the cuts.
    rejoined = "\n".join(line for p in middle for line in p.split("\n") if "line_" in line)
    assert rejoined == "\n".join(code_lines)


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(
        st.one_of(
            st.text(alphabet=st.characters(codec="utf-8", exclude_characters="`"), max_size=120),
            # Fences always stand on their own lines, as Markdown fences do.
            st.sampled_from(["\n", "\n\n", " ", "\n```\n", "\n```py\n", "👍🏽", "    "]),
        ),
        max_size=60,
    ),
    limit=st.integers(min_value=16, max_value=200),
    utf16=st.booleans(),
)
def test_parts_fit_keep_fences_balanced_and_lose_nothing(
    pieces: list[str], limit: int, utf16: bool
) -> None:
    text = "".join(pieces)
    measure = utf16_len if utf16 else len
    parts = split_text(text, limit, measure=measure)
    for part in parts:
        assert measure(part) <= limit
        assert part == part.strip()
        assert part
    assert content("".join(parts)) == content(text)


def test_rejects_a_tiny_limit() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        split_text("hello", 4)


prose = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="`\r"), min_size=1, max_size=300
)
code = st.lists(
    st.text(alphabet=st.characters(codec="ascii", exclude_characters="`\r\n"), max_size=60),
    min_size=1,
    max_size=30,
).map(lambda lines: "```python\n" + "\n".join(lines) + "\n```")


@settings(max_examples=300, deadline=None)
@given(
    blocks=st.lists(st.one_of(prose, code), min_size=1, max_size=12),
    limit=st.integers(min_value=40, max_value=400),
)
def test_every_part_of_balanced_markdown_has_balanced_fences(blocks: list[str], limit: int) -> None:
    text = "\n\n".join(blocks)
    for part in split_text(text, limit, measure=utf16_len):
        assert utf16_len(part) <= limit
        assert len(fence_lines(part)) % 2 == 0, part
