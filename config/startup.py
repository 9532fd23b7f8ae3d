"""What every entry point does first, in one place.

:func:`start` sets up logging (to stderr, personal data taken out of every line) and reads
the settings; :func:`entry_point` turns a :class:`core.errors.ParleyError` raised anywhere
in a ``main`` into one line (``parley: …``) and exit status 2, the trace staying out of the
person's way::

    @entry_point
    def main(argv: list[str] | None = None) -> int:
        args = parser.parse_args(argv)
        settings = start(logging.INFO if args.verbose else logging.WARNING)
        ...
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import ParamSpec

from config import load_settings
from config.settings import Settings
from core.errors import ParleyError
from core.privacy import install_log_redaction

__all__ = ["entry_point", "setup_logging", "start"]

P = ParamSpec("P")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: int, *, quiet: tuple[str, ...] = ()) -> None:
    """Log at ``level`` to stderr with no personal data; ``quiet`` loggers say warnings only."""
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr)
    for name in quiet:
        logging.getLogger(name).setLevel(logging.WARNING)
    install_log_redaction()


def start(level: int, *, quiet: tuple[str, ...] = ()) -> Settings:
    """Set up logging (:func:`setup_logging`), then read the settings once."""
    setup_logging(level, quiet=quiet)
    return load_settings()


def entry_point(main: Callable[P, int]) -> Callable[P, int]:
    """``main``, with Parley's errors shown as one line and exit status 2."""

    @functools.wraps(main)
    def run(*args: P.args, **kwargs: P.kwargs) -> int:
        try:
            return main(*args, **kwargs)
        except ParleyError as exc:
            print(f"parley: {exc}", file=sys.stderr)
            return 2

    return run
