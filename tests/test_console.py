"""The console chat, driven through its standard input like a person would."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest

from bots.console import PROMPT_BOT, run_console
from tests.console_process import console_process
from tests.factories import make_service, make_user


async def chat(lines: list[str]) -> str:
    service, _, _ = make_service()
    stdout = io.StringIO()
    await run_console(
        service,
        user=make_user(),
        stdin=io.StringIO("".join(f"{line}\n" for line in lines)),
        stdout=stdout,
    )
    return stdout.getvalue()


async def test_a_session_with_commands() -> None:
    out = await chat(["hello", "/feedback good", "/explain", "/nope", "", "/quit", "never read"])
    assert out.count(PROMPT_BOT) == 5
    assert "You said: hello" in out
    assert "Thanks" in out
    assert "instructions" in out
    assert "I don't know the command /nope" in out
    assert "empty message" in out
    assert out.rstrip().endswith("Bye!")
    assert "never read" not in out


async def test_end_of_input_ends_the_session() -> None:
    out = await chat(["hi"])
    assert out.rstrip().endswith("Bye!")


def _console(stdin: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return console_process(stdin, tmp_path / "data", "--name", "Sam", **env)


@pytest.mark.slow
def test_three_turns_with_the_real_model_then_feedback_and_explain(tmp_path: Path) -> None:
    lines = ["Hello!", "What is the capital of France?", "Thanks! Say goodbye.", "/feedback good"]
    script = "\n".join([*lines, "/explain", "/quit", ""])
    run = _console(script, tmp_path)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "Parley is ready" in out
    answers = out.split(PROMPT_BOT)[1:]
    assert len(answers) == 5
    assert all(a.strip() and "Sorry" not in a for a in answers[:3])
    assert "Paris" in answers[1]
    assert "Thanks" in answers[3]
    assert "prompt tokens" in answers[4]
    assert (tmp_path / "data" / "parley.db").is_file()
    # The conversation survives a restart: the next session's prompt holds the earlier turns.
    again = _console("/explain\n/quit\n", tmp_path)
    assert "capital of France" in again.stdout


def test_missing_model_is_one_clear_error(tmp_path: Path) -> None:
    run = _console("hello\n", tmp_path, PARLEY_MODEL=str(tmp_path / "missing.gguf"))
    assert run.returncode == 2
    assert "PARLEY_MODEL" in run.stderr
    assert "Traceback" not in run.stderr


def test_bad_setting_is_one_clear_error(tmp_path: Path) -> None:
    run = _console("hello\n", tmp_path, PARLEY_MAX_NEW_TOKENS="lots")
    assert run.returncode == 2
    assert "PARLEY_MAX_NEW_TOKENS" in run.stderr
    assert "Traceback" not in run.stderr
