"""Run Parley as a Telegram bot that polls for updates: no public address needed.

Usage::

    PARLEY_TELEGRAM_TOKEN=123456:ABC-token python -m bots.telegram
    python -m bots.telegram -v          # log what Parley does

Uses the embedded deployment (SQLite under data/, the packaged model). Webhooks are
served by the web process instead (``python -m bots.web``); with
PARLEY_TELEGRAM_WEBHOOK_URL set this command refuses to start, since polling would
remove the webhook. Ctrl-C (or SIGTERM) finishes the replies in progress and stops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from bots.telegram.adapter import TelegramAdapter
from bots.telegram.options import TelegramOptions
from config.startup import entry_point, start
from config.wiring import build_web
from core.errors import ConfigurationError
from core.outbox import Outbox

__all__ = ["main", "serve"]


async def serve(adapter: TelegramAdapter, outbox: Outbox | None = None) -> None:
    """Run the adapter until SIGINT or SIGTERM; with ``outbox``, deliver what a run left."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
            loop.add_signal_handler(sig, stopping.set)
    await adapter.start()
    if outbox is not None:
        outbox.add(adapter.deliverer())
        await outbox.start()
    print("Parley is on Telegram. Ctrl-C stops it.", file=sys.stderr, flush=True)
    try:
        await stopping.wait()
    finally:
        if outbox is not None:
            await outbox.stop()
        await adapter.stop()
        if outbox is not None:
            await outbox.release()


@entry_point
def main(argv: list[str] | None = None) -> int:
    """Start the Telegram bot on the configured (by default embedded) deployment."""
    parser = argparse.ArgumentParser(
        prog="python -m bots.telegram", description=__doc__.splitlines()[0]
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what Parley does")
    args = parser.parse_args(argv)
    # httpx would log every request to Telegram, several a second while answering.
    settings = start(logging.INFO if args.verbose else logging.WARNING, quiet=("httpx",))
    # Checked before the model loads, so that a missing token fails in a blink.
    options = TelegramOptions.from_settings(settings.telegram)
    if options.webhook:
        raise ConfigurationError(
            "PARLEY_TELEGRAM_WEBHOOK_URL is set: webhooks are served by "
            "`python -m bots.web`. Unset it to poll with this command."
        )
    print(f"Loading the model {settings.llm.name} …", file=sys.stderr, flush=True)
    with contextlib.closing(build_web(settings)) as parley, contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(TelegramAdapter(parley.inbox, options), parley.outbox))
    return 0


if __name__ == "__main__":
    sys.exit(main())
