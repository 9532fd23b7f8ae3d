"""``python -m bots.console`` as a person runs it: a real process, lines typed on its stdin."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.model_fixtures import MODEL_CACHE

REPO = Path(__file__).resolve().parent.parent

__all__ = ["console_process"]


def console_process(
    stdin: str, data_dir: Path, *args: str, clean: bool = False, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run the console with ``stdin`` typed in, greedy and short, its data in ``data_dir``.

    ``env`` adds ``PARLEY_*`` settings; ``clean`` drops the caller's own ``PARLEY_*`` ones.
    """
    environment = {k: v for k, v in os.environ.items() if not (clean and k.startswith("PARLEY_"))}
    environment.update(
        {
            "PYTHONPATH": str(REPO),
            "PARLEY_DATA_DIR": str(data_dir),
            "PARLEY_MODEL_CACHE_DIR": str(MODEL_CACHE),
            "PARLEY_TEMPERATURE": "0",
            "PARLEY_MAX_NEW_TOKENS": "48",
            **env,
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "bots.console", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=environment,
        timeout=300,
        check=False,
    )
