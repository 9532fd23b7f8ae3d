"""Personal data out of text: what is stored, logged or trained on never carries it.

:func:`redact` replaces e-mail addresses, phone numbers, payment card numbers (only those
that pass the Luhn check), IBANs (only those whose mod-97 check holds) and secrets (API
keys, bot tokens, JWTs, private keys) with a typed placeholder such as ``[email]``, so the
text stays readable and a model trained on it learns the shape, not the data::

    >>> redact("Mail ada@example.org or call +44 20 7946 0958")
    'Mail [email] or call [phone]'

:func:`find_personal_data` lists what was found, for tests and for counting in metrics.
The checks are deliberately conservative on numbers: a 16-digit order id that fails the
Luhn check stays, a date or a price is not a phone number.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["KINDS", "Finding", "find_personal_data", "redact"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One piece of personal data: its kind and where it is in the text."""

    kind: str
    start: int
    end: int


def _luhn(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        n = int(char)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _card(match: re.Match[str]) -> bool:
    digits = re.sub(r"\D", "", match.group())
    return 13 <= len(digits) <= 19 and _luhn(digits)


def _iban(match: re.Match[str]) -> bool:
    compact = re.sub(r"\s", "", match.group()).upper()
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in moved)
    return int(number) % 97 == 1


def _phone(match: re.Match[str]) -> bool:
    text = match.group()
    digits = re.sub(r"\D", "", text)
    if not 7 <= len(digits) <= 15:
        return False
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}|\d{1,3}(?:\.\d{1,3}){3}", text.strip()):
        return False  # an ISO date or an IPv4 address
    # A bare run of digits is more often an id than a phone number; require a phone's shape.
    return text.lstrip().startswith(("+", "(")) or bool(re.search(r"[\s.\-)]", text.strip()))


def _any(_: re.Match[str]) -> bool:
    return True


# Order matters: secrets and IBANs before cards and phones, whose patterns they contain.
_PATTERNS: tuple[tuple[str, re.Pattern[str], Callable[[re.Match[str]], bool]], ...] = (
    (
        "secret",
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"
            r"|\b(?:sk|pk|rk)-(?:live-|test-|proj-|ant-)?[A-Za-z0-9_\-]{16,}"
            r"|\b(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"
            r"|\bxox[abposr]-[A-Za-z0-9\-]{10,}"
            r"|\bxapp-[A-Za-z0-9\-]{10,}"
            r"|\bgh[pousr]_[A-Za-z0-9]{30,}"
            r"|\bgithub_pat_[A-Za-z0-9_]{30,}"
            r"|\bglpat-[A-Za-z0-9_\-]{20,}"
            r"|\bhf_[A-Za-z0-9]{30,}"
            r"|\bAIza[0-9A-Za-z_\-]{35}"
            r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"
            r"|\b\d{8,10}:[A-Za-z0-9_\-]{35}\b"  # a Telegram bot token
            r"|\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"  # a JWT
            r"|(?i:\b(?:api[_-]?key|secret|token|password|passwd)\b\s*[:=]\s*)(?P<value>\S{8,})"
        ),
        _any,
    ),
    ("email", re.compile(r"[\w.+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"), _any),
    (
        "iban",
        re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b"),
        _iban,
    ),
    ("card", re.compile(r"(?<![\d\-])\d(?:[ \-]?\d){12,18}(?![\d\-])"), _card),
    (
        "phone",
        re.compile(r"(?<![\w+])(?:\+|\(?\b)\d[\d\s().\-]{5,18}\d\b(?!\.\d)"),
        _phone,
    ),
)

KINDS = tuple(kind for kind, _, _ in _PATTERNS)
"""The kinds of personal data found, in the order they are looked for."""


def find_personal_data(text: str) -> list[Finding]:
    """Every piece of personal data in ``text``, left to right, without overlaps."""
    found: list[Finding] = []
    taken: list[tuple[int, int]] = []
    for kind, pattern, valid in _PATTERNS:
        for match in pattern.finditer(text):
            # A labelled secret (``password: …``) keeps its label.
            start, end = match.span("value") if match.groupdict().get("value") else match.span()
            if any(start < e and s < end for s, e in taken) or not valid(match):
                continue
            found.append(Finding(kind, start, end))
            taken.append((start, end))
    return sorted(found, key=lambda f: f.start)


def redact(text: str) -> str:
    """``text`` with each piece of personal data replaced by ``[kind]``."""
    findings = find_personal_data(text)
    if not findings:
        return text
    parts: list[str] = []
    position = 0
    for finding in findings:
        parts.append(text[position : finding.start])
        parts.append(f"[{finding.kind}]")
        position = finding.end
    parts.append(text[position:])
    return "".join(parts)
