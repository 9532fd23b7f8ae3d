"""The packaged profile version: registered and served at first start, once; off and rollback
give the plain base model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config.settings import Settings
from config.wiring import open_registry, open_store
from core.db import SqlStore
from core.registry import AdapterStatus, MemoryRegistry
from core.versions import ModelVersions
from workers.model import resolve_source
from workers.packaged_version import PACKAGED_VERSION_ID, ensure_packaged_version, packaged_folder
from workers.training.profile_run import PACKAGED_FILES


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(data_dir=tmp_path / "data", _env_file=None, **overrides)  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> SqlStore:
    return open_store(_settings(tmp_path))


def test_the_package_ships_the_version_with_its_run_record() -> None:
    folder = packaged_folder()
    for name in PACKAGED_FILES:
        assert (folder / name).is_file(), name
    run = json.loads((folder / "parley_run.json").read_text())
    assert run["base_model"] == resolve_source(Settings(_env_file=None).llm.name).version  # type: ignore[call-arg]
    assert run["options"]["correction_method"] == "sft"
    # Small enough to ship: a LoRA in fp16.
    assert (folder / "adapter_model.safetensors").stat().st_size < 16 * 2**20


def test_first_start_registers_and_serves_it_once(tmp_path: Path, store: SqlStore) -> None:
    settings = _settings(tmp_path)
    registry = open_registry(store)
    version = ensure_packaged_version(registry, settings)
    assert version is not None
    assert version.status is AdapterStatus.SERVING
    served = registry.serving()
    assert served is not None
    assert served.id == PACKAGED_VERSION_ID
    assert (Path(served.path) / "adapter_model.safetensors").is_file()
    assert Path(served.path).is_relative_to(settings.versions_path)

    # Later starts change nothing.
    assert ensure_packaged_version(registry, settings) is None
    assert [v.id for v in registry.versions()] == [PACKAGED_VERSION_ID]
    listed = ModelVersions(registry, store).versions()
    assert f"Serving: {PACKAGED_VERSION_ID}." in listed
    assert f"▶ {PACKAGED_VERSION_ID} · serving" in listed


def test_rollback_serves_the_plain_base_and_a_restart_keeps_it(
    tmp_path: Path, store: SqlStore
) -> None:
    settings = _settings(tmp_path)
    registry = open_registry(store)
    ensure_packaged_version(registry, settings)
    said = ModelVersions(registry, store).rollback("admin")
    assert "serving the base model" in said
    assert registry.serving() is None
    assert ensure_packaged_version(registry, settings) is None
    assert registry.serving() is None


def test_the_setting_switches_it_off(tmp_path: Path) -> None:
    registry = MemoryRegistry()
    off = _settings(tmp_path, profile_version=False)
    assert ensure_packaged_version(registry, off) is None
    assert registry.versions() == []
    # Switched off after it was served: the plain base is served again.
    ensure_packaged_version(registry, _settings(tmp_path))
    assert registry.serving() is not None
    ensure_packaged_version(registry, off)
    assert registry.serving() is None


def test_a_version_promoted_before_is_not_displaced(tmp_path: Path) -> None:
    from core.registry import AdapterVersion

    registry = MemoryRegistry()
    registry.add(AdapterVersion(id="ft-1", base_model="x", path=str(tmp_path)))
    registry.promote("ft-1", "by hand")
    version = ensure_packaged_version(registry, _settings(tmp_path))
    assert version is not None
    assert version.status is AdapterStatus.CANDIDATE
    served = registry.serving()
    assert served is not None
    assert served.id == "ft-1"


def test_another_base_model_gets_no_packaged_version(tmp_path: Path) -> None:
    registry = MemoryRegistry()
    other = "HuggingFaceTB/SmolLM2-360M-Instruct"
    assert ensure_packaged_version(registry, _settings(tmp_path, model=other)) is None
    assert registry.versions() == []


def test_an_upgrade_serves_the_new_shipped_version_where_the_old_one_was_served(
    tmp_path: Path,
) -> None:
    from core.registry import AdapterVersion

    registry = MemoryRegistry()
    registry.add(AdapterVersion(id="packaged-profile-v1", base_model="x", path=str(tmp_path)))
    registry.promote("packaged-profile-v1", "packaged: served from first start")
    version = ensure_packaged_version(registry, _settings(tmp_path))
    assert version is not None
    served = registry.serving()
    assert served is not None
    assert served.id == PACKAGED_VERSION_ID != "packaged-profile-v1"
    # Switched off: no shipped version is served, neither the new one nor the one before.
    ensure_packaged_version(registry, _settings(tmp_path, profile_version=False))
    assert registry.serving() is None
