"""The operator's commands for learning from feedback.

::

    python -m workers.fine_tune run              # the nightly run, now (cron in embedded mode)
    python -m workers.fine_tune versions         # adapter versions, the one served, figures
    python -m workers.fine_tune rates            # answers and feedback per model version
    python -m workers.fine_tune promote ft-20261129-030002
    python -m workers.fine_tune rollback

``run`` logs its plan before training (rows, steps per stage, about how long it will take),
then each step (loss, elapsed, time left), and prints the outcome with the steps trained and
the time they took against the estimate; ``<adapters>/runs.jsonl`` gets the same plan and
progress as ``event`` lines. ``promote`` and ``rollback`` only change the registry: every
process that answers follows within ``PARLEY_ADAPTER_POLL_S`` seconds, without a restart. In
the scaled deployment Celery beat runs ``run`` every night on the ``train`` queue
(``parley.fine_tune``).
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from collections.abc import Sequence

from config.settings import Settings
from config.startup import entry_point, setup_logging, start
from config.wiring import open_registry, open_store
from core.registry import RegistryError
from core.versions import ModelVersions

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m workers.fine_tune", description="Learning from feedback, for operators."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="run the nightly fine-tuning now")
    commands.add_parser("versions", help="list adapter versions and the one served")
    commands.add_parser("rates", help="answers and feedback per model version")
    promote = commands.add_parser("promote", help="serve an adapter version")
    promote.add_argument("version", help="an id from `versions`")
    commands.add_parser("rollback", help="serve the version served before the current one")
    return parser


@entry_point
def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    """Run one command; 0 on success, 1 when the registry refuses, 2 on a bad configuration."""
    args = _parser().parse_args(argv)
    # A run shows its progress; the other commands print their answer only.
    level = logging.INFO if args.command == "run" else logging.WARNING
    if settings is None:
        settings = start(level, quiet=("alembic",))
    else:
        setup_logging(level, quiet=("alembic",))
    store = open_store(settings)
    try:
        if args.command == "run":
            from workers.nightly import run_nightly

            outcome = run_nightly(settings, store, open_registry(store))
            print(outcome.summary())
            return 0
        versions = ModelVersions(open_registry(store), store)
        who = f"{getpass.getuser()} (command line)"
        if args.command == "versions":
            print(versions.versions())
        elif args.command == "rates":
            print(versions.rates())
        elif args.command == "promote":
            print(versions.promote(args.version, who))
        else:
            print(versions.rollback(who))
        return 0
    except RegistryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
