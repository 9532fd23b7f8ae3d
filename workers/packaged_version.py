"""The profile-following version that ships with Parley, registered at first start.

``workers/assets/profile_version/`` holds a LoRA adapter over the packaged SmolLM2-135M
(trained by :mod:`workers.training.profile_run` on :mod:`workers.training.profile_data`; see
``docs/personalization.md``), with its ``parley_run.json`` and report picture.
:func:`ensure_packaged_version` copies it into the adapters folder and records it in the
registry as the served version, once: the nightly runs then continue from it, ``/admin
versions`` lists it, and ``/admin rollback`` goes back to the plain base model. Later
starts change nothing, so an operator's rollback or promotion stands. A newer shipped
version (a new id) is registered at the first start after an upgrade, and served only
where the deployment served an earlier shipped version (a nightly version trained since
stays served; ``/admin promote`` switches by hand).

``PARLEY_PROFILE_VERSION=false`` switches it off: it is not registered, and if it is being
served it is rolled back (to the version served before it, or the base model).
"""

from __future__ import annotations

import importlib.resources
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from config.settings import Settings
from core.errors import ModelLoadError
from core.registry import AdapterRegistry, AdapterStatus, AdapterVersion

__all__ = ["PACKAGED_VERSION_ID", "ensure_packaged_version", "packaged_folder"]

log = logging.getLogger(__name__)

PACKAGED_VERSION_ID = "packaged-profile-v2"
"""The registry id of the shipped version (a new training gets a new id)."""
_EARLIER_IDS = ("packaged-profile-v1",)
"""Versions shipped before: a deployment that serves one of them moves to the new one."""
_FILES = ("adapter_config.json", "adapter_model.safetensors", "parley_run.json", "report.png")


def packaged_folder() -> Path:
    """Where the package keeps the shipped version."""
    return Path(str(importlib.resources.files("workers") / "assets" / "profile_version"))


def _run_record(folder: Path) -> dict[str, Any]:
    run = folder / "parley_run.json"
    return dict(json.loads(run.read_text(encoding="utf-8"))) if run.is_file() else {}


def _registered(registry: AdapterRegistry) -> bool:
    return any(v.id == PACKAGED_VERSION_ID for v in registry.versions(limit=10_000))


def ensure_packaged_version(
    registry: AdapterRegistry, settings: Settings, *, folder: Path | None = None
) -> AdapterVersion | None:
    """Register and serve the shipped version on first start (module docstring).

    Returns the version registered by this call, or ``None`` when there was nothing to do:
    already registered, switched off, no shipped files, or another base model configured.
    ``folder`` replaces the package's own folder (tests).
    """
    source = folder or packaged_folder()
    if not settings.fine_tuning.profile_version:
        shipped = (PACKAGED_VERSION_ID, *_EARLIER_IDS)
        for _ in shipped:  # an upgraded deployment rolls back past each shipped version
            serving = registry.serving()
            if serving is None or serving.id not in shipped:
                break
            registry.rollback("PARLEY_PROFILE_VERSION is off")
            log.info("The packaged profile version %s is switched off: rolled back", serving.id)
        return None
    if not (source / "adapter_config.json").is_file() or _registered(registry):
        return None  # nothing shipped, or registered at an earlier start
    record = _run_record(source)
    from workers.model import resolve_source

    try:
        base = resolve_source(settings.llm.name).version
    except ModelLoadError:
        return None  # the model setting's own error is the one to show, where it loads
    if record.get("base_model") not in (None, base):
        log.info(
            "The packaged profile version fits %s, not %s: not registered",
            record.get("base_model"),
            base,
        )
        return None
    target = settings.versions_path / PACKAGED_VERSION_ID
    target.mkdir(parents=True, exist_ok=True)
    for name in _FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, target / name)
    version = AdapterVersion(
        id=PACKAGED_VERSION_ID,
        base_model=base,
        path=str(target),
        status=AdapterStatus.CANDIDATE,
        reason="packaged profile-following version (docs/personalization.md)",
        figures={
            "before": record.get("before", {}),
            "after": record.get("after", {}),
            "report": str(target / "report.png"),
        },
    )
    try:
        registry.add(version)
    except Exception:
        if _registered(registry):  # another process starting beside this one was first
            return None
        raise
    serving = registry.serving()
    if serving is None:
        version = registry.promote(PACKAGED_VERSION_ID, "packaged: served from first start")
    elif serving.id in _EARLIER_IDS:
        version = registry.promote(PACKAGED_VERSION_ID, f"packaged: replaces {serving.id}")
    log.info("Registered the packaged profile version %s (%s)", version.id, version.status)
    return version
