"""The settings: flat PARLEY_* names read into their groups, and the generated reference page."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from config import load_settings
from config.groups import TelegramSettings
from config.reference import COMMAND, render
from config.settings import Settings, flat_settings, options_for
from core.conversation import ConversationOptions
from core.errors import ConfigurationError
from core.limits import LimitOptions
from core.media import MediaLimits
from core.responder import JobOptions
from workers.media import MediaOptions
from workers.training import TrainingOptions

REPO = Path(__file__).resolve().parent.parent

# Every setting the single flat class had: none may be renamed or lost.
FLAT_NAMES = [
    "adapter_poll_s",
    "adapters_dir",
    "admins",
    "answer_time_limit_s",
    "answer_wait_s",
    "assistant_name",
    "canary",
    "context_tokens",
    "cpu_threads",
    "data_dir",
    "database_url",
    "deployment",
    "device",
    "dtype",
    "fine_tune_auto_promote",
    "fine_tune_hour",
    "fine_tune_max_steps",
    "fine_tune_min_feedback",
    "fine_tune_person_cap",
    "fine_tune_untrusted_weight",
    "generator",
    "history_turns",
    "max_attempts",
    "max_audio_seconds",
    "max_batch_size",
    "max_media_bytes",
    "max_message_chars",
    "max_new_tokens",
    "max_queued_per_person",
    "media",
    "media_wait_s",
    "model",
    "model_cache_dir",
    "moderation",
    "moderation_input_threshold",
    "moderation_output_threshold",
    "ocr_languages",
    "one_answer_at_a_time",
    "profile_tokens",
    "quota_chat_tokens_per_day",
    "quota_tokens_per_day",
    "rate_chat_messages_per_minute",
    "rate_messages_per_minute",
    "reconcile_after_s",
    "reconcile_interval_s",
    "redact_stored_text",
    "redis_url",
    "repetition_penalty",
    "retention_days",
    "seed",
    "sentiment",
    "slack_access",
    "slack_allowed_channels",
    "slack_allowed_users",
    "slack_allowed_workspaces",
    "slack_api_url",
    "slack_app_token",
    "slack_bot_token",
    "slack_signing_secret",
    "system_prompt",
    "task_time_limit_s",
    "telegram_access",
    "telegram_allowed_chats",
    "telegram_allowed_users",
    "telegram_api_url",
    "telegram_token",
    "telegram_webhook_secret",
    "telegram_webhook_url",
    "temperature",
    "top_p",
    "visibility_timeout_s",
    "vision_model",
    "web_host",
    "web_port",
    "whisper_beam_size",
    "whisper_compute_type",
    "whisper_device",
    "whisper_language",
    "whisper_model",
    "worker_metrics_port",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No PARLEY_* variable and no .env file from the machine running the tests."""
    for name in list(os.environ):
        if name.startswith("PARLEY_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_every_old_name_is_still_read() -> None:
    accepted = {name for s in flat_settings() for name in (s.name, *s.aliases)}
    assert set(FLAT_NAMES) <= accepted  # new settings may come; none may go
    assert "versions_dir" in accepted  # PARLEY_ADAPTERS_DIR's new name
    current = [s.name for s in flat_settings()]
    assert len(current) == len(set(current))


@pytest.mark.parametrize(
    ("env", "value", "path", "expected"),
    [
        ("PARLEY_MODEL", "my/model", "llm.name", "my/model"),
        ("PARLEY_DEPLOYMENT", "scaled", "scaling.deployment", "scaled"),
        ("PARLEY_MEDIA", "false", "attachments.enabled", False),
        ("PARLEY_MAX_MEDIA_BYTES", "1234", "attachments.max_bytes", 1234),
        ("PARLEY_TEMPERATURE", "0", "generation.temperature", 0.0),
        ("PARLEY_WEB_PORT", "9001", "web.port", 9001),
        ("PARLEY_RATE_MESSAGES_PER_MINUTE", "7", "limits.person_per_minute", 7),
        ("PARLEY_FINE_TUNE_PERSON_CAP", "0.5", "fine_tuning.max_person_share", 0.5),
        ("PARLEY_REDACT_STORED_TEXT", "no", "privacy.redact_stored", False),
        ("PARLEY_MODERATION_INPUT_THRESHOLD", "0.5", "safety.input_threshold", 0.5),
        ("PARLEY_RECONCILE_AFTER_S", "5", "jobs.reconcile_after_s", 5.0),
        ("PARLEY_DATA_DIR", "/srv/parley", "storage.data_dir", Path("/srv/parley")),
        ("PARLEY_SEED", "", "generation.seed", None),
        ("parley_history_turns", "3", "conversation.history_turns", 3),
    ],
)
def test_a_flat_variable_lands_in_its_group(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, path: str, expected: Any
) -> None:
    monkeypatch.setenv(env, value)
    group, field = path.split(".")
    assert getattr(getattr(Settings(), group), field) == expected


def test_the_older_adapters_dir_still_works_and_the_new_name_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PARLEY_ADAPTERS_DIR", "/old")
    assert Settings().fine_tuning.versions_dir == Path("/old")
    assert Settings().versions_path == Path("/old")
    monkeypatch.setenv("PARLEY_VERSIONS_DIR", "/new")
    assert Settings().fine_tuning.versions_dir == Path("/new")
    assert Settings(data_dir=Path("/d")).model_copy().versions_path == Path("/new")


@pytest.mark.parametrize("value", ['["123", "-100456"]', "123, -100456", "123,-100456,"])
def test_lists_take_json_or_commas(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("PARLEY_TELEGRAM_ALLOWED_USERS", value)
    assert Settings().telegram.allowed_users == ["123", "-100456"]


def test_secrets_stay_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_TELEGRAM_TOKEN", "123:very-secret")
    settings = Settings()
    assert isinstance(settings.telegram.token, SecretStr)
    assert settings.telegram.token.get_secret_value() == "123:very-secret"
    assert "very-secret" not in repr(settings)
    assert "very-secret" not in str(settings)
    assert settings.environment()["PARLEY_TELEGRAM_TOKEN"] == "123:very-secret"


def test_dotenv_file_is_read_and_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    Path(".env").write_text("PARLEY_WEB_PORT=9100\nPARLEY_ASSISTANT_NAME=Dot\n", encoding="utf-8")
    monkeypatch.setenv("PARLEY_ASSISTANT_NAME", "Env")
    settings = Settings()
    assert settings.web.port == 9100
    assert settings.conversation.assistant_name == "Env"
    assert Settings(_env_file=None).web.port == 8000  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        ("PARLEY_ADMINS", "alice", "PARLEY_ADMINS: .*platform:user-id"),
        ("PARLEY_TEMPERATURE", "9", "PARLEY_TEMPERATURE: "),
        ("PARLEY_WEB_PORT", "port", "PARLEY_WEB_PORT: "),
        ("PARLEY_TELEGRAM_ACCESS", "friends", "PARLEY_TELEGRAM_ACCESS: "),
        ("PARLEY_MAX_MEDIA_BYTES", "0", "PARLEY_MAX_MEDIA_BYTES: "),
        ("PARLEY_MAX_NEW_TOKENS", "4000", "PARLEY_MAX_NEW_TOKENS .* PARLEY_CONTEXT_TOKENS"),
        (
            "PARLEY_TASK_TIME_LIMIT_S",
            "7200",
            "PARLEY_TASK_TIME_LIMIT_S .* PARLEY_VISIBILITY_TIMEOUT_S",
        ),
    ],
)
def test_a_bad_value_is_one_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, message: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigurationError, match=message):
        load_settings()


def test_flat_keywords_and_whole_groups_both_build_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    flat = Settings(redis_url="redis://r:1/0", telegram_token="1:a", max_new_tokens=9)
    assert flat.scaling.redis_url.get_secret_value() == "redis://r:1/0"
    assert flat.generation.max_new_tokens == 9
    monkeypatch.setenv("PARLEY_TELEGRAM_API_URL", "http://local/bot")
    grouped = Settings(telegram=TelegramSettings(token=SecretStr("2:b")))
    assert grouped.telegram.token is not None
    assert grouped.telegram.token.get_secret_value() == "2:b"
    assert grouped.telegram.api_url == "http://local/bot"  # the rest still from the env


def test_a_copy_takes_flat_names_and_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(data_dir=Path("/a"), temperature=0.1)
    monkeypatch.setenv("PARLEY_TOP_P", "0.5")  # a copy does not read the environment again
    copy = settings.model_copy(update={"data_dir": Path("/b"), "max_new_tokens": 12})
    assert copy.storage.data_dir == Path("/b")
    assert copy.versions_path == Path("/b/adapters")
    assert (copy.generation.temperature, copy.generation.max_new_tokens) == (0.1, 12)
    assert copy.generation.top_p == settings.generation.top_p == 0.9
    with pytest.raises(ValueError, match="less than or equal"):
        settings.model_copy(update={"temperature": 5})


def test_the_environment_of_settings_builds_the_same_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(
        deployment="scaled", slack_allowed_users=["U1", "U2"], seed=3, database_url="sqlite://"
    )
    for name, value in settings.environment().items():
        monkeypatch.setenv(name, value)
    assert Settings() == settings


def test_every_setting_is_described() -> None:
    undescribed = [s.env for s in flat_settings() if not (s.info.description or "").strip()]
    assert undescribed == []


@pytest.mark.parametrize(
    ("options", "groups", "given", "carried"),
    [
        (
            ConversationOptions,
            ("conversation", "generation"),
            {"prompt_budget": 1},
            {"system_prompt", "assistant_name", "max_new_tokens", "history_turns"}
            | {"profile_tokens", "max_message_chars"},
        ),
        (JobOptions, ("jobs",), {"lease_seconds": 1.0}, {"max_attempts"}),
        (
            LimitOptions,
            ("limits",),
            {},
            {"person_per_minute", "chat_per_minute", "person_tokens_per_day"}
            | {"chat_tokens_per_day", "one_at_a_time", "max_queued"},
        ),
        (MediaLimits, ("attachments",), {}, {"max_bytes", "max_audio_seconds"}),
        (
            MediaOptions,
            ("attachments", "llm"),
            {},
            {"whisper_model", "whisper_device", "whisper_compute_type", "whisper_language"}
            | {"whisper_beam_size", "max_audio_seconds", "ocr_languages", "vision_model"}
            | {"cpu_threads"},
        ),
        (
            TrainingOptions,
            ("fine_tuning",),
            {},
            {"min_new_feedback", "max_person_share", "untrusted_weight", "max_steps"},
        ),
    ],
)
def test_options_come_whole_from_their_groups(
    options: type[Any], groups: tuple[str, ...], given: dict[str, Any], carried: set[str]
) -> None:
    settings = Settings(
        system_prompt="Hi", max_attempts=9, rate_chat_messages_per_minute=4, max_media_bytes=5,
        whisper_language="de", cpu_threads=3, fine_tune_max_steps=7, history_turns=2,
    )  # fmt: skip
    built = options_for(options, *(getattr(settings, g) for g in groups), **given)
    values = {
        name: getattr(getattr(settings, g), name)
        for g in reversed(groups)
        for name in type(getattr(settings, g)).model_fields
    }
    fields = {f.name for f in dataclasses.fields(options)}
    assert carried == fields & values.keys()  # a renamed field would drop out here
    for name in carried:
        assert getattr(built, name) == values[name], name


def test_the_configuration_page_is_generated_from_the_settings() -> None:
    page = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert page == render(), f"docs/configuration.md is out of date: run `{COMMAND}`"
    for setting in flat_settings():
        assert f"`{setting.env}`" in page
