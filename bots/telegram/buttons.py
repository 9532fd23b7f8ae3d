"""The 👍/👎 buttons under every answer, and reading a press back.

A button's ``callback_data`` names the answer and the rating: ``fb:<answer_id>:good`` or
``fb:<answer_id>:bad`` (Telegram allows 64 bytes)::

    markup = feedback_keyboard(reply.answer_id)
    parse_feedback_data("fb:42:good")  # (42, Rating.GOOD)
"""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from core.types import Rating

__all__ = ["feedback_keyboard", "parse_feedback_data"]

_PREFIX = "fb"
_LABELS = ((Rating.GOOD, "👍"), (Rating.BAD, "👎"))


def feedback_keyboard(answer_id: int) -> InlineKeyboardMarkup:
    """The inline keyboard that rates one answer."""
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(label, callback_data=f"{_PREFIX}:{answer_id}:{rating}")
                for rating, label in _LABELS
            ]
        ]
    )


def parse_feedback_data(data: str | None) -> tuple[int, Rating] | None:
    """The answer id and rating a button press carries; ``None`` if it is not one of ours."""
    if data is None:
        return None
    prefix, _, rest = data.partition(":")
    answer, _, rating = rest.partition(":")
    if prefix != _PREFIX or not answer.isascii() or not answer.isdigit():
        return None
    try:
        return int(answer), Rating(rating)
    except ValueError:
        return None
