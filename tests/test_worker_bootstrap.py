"""How the Celery processes start: settings read once, when needed; tasks handed their parts.

The workers themselves run in ``test_scaled.py`` and ``test_media_scaled.py`` (slow); these
tests start the bootstrap in a fresh interpreter, as ``celery -A workers.celery_app`` does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.settings import Settings
from core.errors import ConfigurationError
from tests.test_architecture import ENTRY_POINTS, ROOT
from workers.queues import GENERATE_QUEUE, TaskQueue, celery_app
from workers.runtime import handed


def _python(code: str, tmp_path: Path, **env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    environment.update(PYTHONPATH=str(ROOT), PARLEY_DATA_DIR=str(tmp_path), **env)
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_importing_an_entry_point_reads_no_settings(tmp_path: Path) -> None:
    modules = ", ".join(sorted(ENTRY_POINTS | {"workers.tasks"}))
    # A setting that cannot be read: importing must not notice.
    _python(f"import {modules}", tmp_path, PARLEY_MAX_NEW_TOKENS="not a number")


def test_the_workers_app_reads_the_settings_when_first_needed_and_hands_over_parts(
    tmp_path: Path,
) -> None:
    code = """
from celery import signals
from workers.celery_app import app
from workers.runtime import handed
print(app.conf.broker_url, app.conf.beat_schedule["reconcile"]["schedule"].seconds)
signals.worker_process_init.send(sender="test")
app.loader.import_default_modules()  # what the worker does as it starts
print(handed().settings.jobs.reconcile_interval_s, sorted(n for n in app.tasks if "parley" in n))
"""
    out = _python(
        code,
        tmp_path,
        PARLEY_REDIS_URL="redis://127.0.0.1:6399/3",
        PARLEY_RECONCILE_INTERVAL_S="7",
    ).splitlines()
    assert out[0] == "redis://127.0.0.1:6399/3 7"
    assert out[1] == (
        "7.0 ['parley.answer', 'parley.explain', 'parley.fine_tune', 'parley.purge', "
        "'parley.read_media', 'parley.reconcile']"
    )


def test_a_task_outside_a_worker_says_how_to_start_one() -> None:
    with pytest.raises(ConfigurationError, match=r"celery -A workers\.celery_app worker"):
        handed()


def test_the_web_process_sends_through_an_app_of_its_own() -> None:
    settings = Settings(redis_url="redis://127.0.0.1:6399/5", _env_file=None)  # type: ignore[call-arg]
    app = celery_app(settings)
    assert app.conf.broker_url == "redis://127.0.0.1:6399/5"
    assert app.conf.task_routes["parley.answer"] == {"queue": GENERATE_QUEUE}
    other = celery_app(Settings(redis_url="redis://127.0.0.1:6399/6", _env_file=None))  # type: ignore[call-arg]
    assert other.conf.broker_url == "redis://127.0.0.1:6399/6"
    assert app.conf.broker_url == "redis://127.0.0.1:6399/5"
    TaskQueue(app).close()
    other.close()
