"""Serving fine-tuned versions: switch a running model to the promoted LoRA, no restart.

A fine-tuned *version* (:class:`core.registry.AdapterVersion`) is a LoRA adapter on top of the
base model. :class:`LoraSlot` applies one LoRA adapter (a PEFT folder written by
:mod:`workers.training`) to a loaded model *in place*: the adapter is merged into the
weights, so answers cost what they cost without it, and the generators keep calling the same
model object. Switching unmerges the old adapter first; switching to ``None`` serves the
base model again. A slot must only be switched while nothing generates with the model: the
generators do it between answers (:meth:`workers.batching.BatchedGenerator.use_version`).

:class:`VersionWatcher` polls the registry (:mod:`core.registry`) every few seconds and asks
the generator to switch when the served version changes, so a promotion or a rollback takes
effect in every worker within ``PARLEY_ADAPTER_POLL_S`` plus the answers already running.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from core.errors import ModelLoadError
from core.registry import AdapterRegistry, AdapterVersion
from workers.model import LoadedModel

__all__ = ["LoraSlot", "SwitchesVersions", "VersionWatcher"]

log = logging.getLogger(__name__)


class LoraSlot:
    """The adapter merged into one loaded model (``None``: the base model)."""

    def __init__(self, loaded: LoadedModel) -> None:
        """Use :meth:`of`: one model has one slot, shared by everything that serves it."""
        self._loaded = loaded
        self._peft: Any = None
        self._merged: str | None = None
        self._lock = threading.Lock()

    @classmethod
    def of(cls, loaded: LoadedModel) -> LoraSlot:
        """The slot of ``loaded``, made on first use."""
        if loaded.lora_slot is None:
            loaded.lora_slot = cls(loaded)
        return loaded.lora_slot

    @property
    def current(self) -> str | None:
        """The id of the adapter being served, or ``None``."""
        return self._merged

    def apply(self, version: AdapterVersion | None) -> None:
        """Serve ``version`` (``None``: the base model). Call only between generations.

        Raises :class:`core.errors.ModelLoadError` when the adapter cannot be loaded; the
        model is then left serving the base weights, never a half-applied adapter.
        """
        import torch

        wanted = version.id if version is not None else None
        if wanted == self._merged:
            return
        started = time.perf_counter()
        with self._lock, torch.inference_mode(False), torch.no_grad():
            self._unmerge()
            if version is None:
                log.info("Serving the base model %s", self._loaded.source.version)
                return
            try:
                self._load(version)
            except Exception as exc:
                self._unmerge()
                raise ModelLoadError(
                    f"The adapter {version.id} at {version.path} could not be loaded: {exc}"
                ) from exc
        log.info(
            "Serving adapter %s on %s (switched in %.2f s)",
            version.id,
            self._loaded.source.version,
            time.perf_counter() - started,
        )

    def _load(self, version: AdapterVersion) -> None:
        from peft import PeftModel

        path = Path(version.path)
        if not (path / "adapter_config.json").is_file():
            raise FileNotFoundError(f"no adapter_config.json in {path}")
        if self._peft is None:
            # Injects LoRA layers into the loaded model's own modules: the object the
            # generators hold stays the same. PEFT asks transformers a deprecated question
            # (is_gradient_checkpointing), whose FutureWarning would land in a console chat.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                self._peft = PeftModel.from_pretrained(
                    self._loaded.model, str(path), adapter_name=version.id
                )
        else:
            self._peft.base_model.enable_adapter_layers()
            if version.id not in self._peft.peft_config:
                self._peft.load_adapter(str(path), adapter_name=version.id)
        self._peft.set_adapter(version.id)
        self._peft.merge_adapter()
        self._peft.eval()
        for name in [n for n in self._peft.peft_config if n != version.id]:
            self._peft.delete_adapter(name)
        self._merged = version.id
        self._loaded.adapter = version.id

    def _unmerge(self) -> None:
        """Back to the base weights; the adapter stays loaded, disabled, until replaced."""
        if self._peft is None:
            return
        if self._merged is not None:
            self._peft.unmerge_adapter()
        self._peft.base_model.disable_adapter_layers()
        self._merged = None
        self._loaded.adapter = None


@runtime_checkable
class SwitchesVersions(Protocol):
    """A generator that can serve another fine-tuned version between answers."""

    def use_version(self, version: AdapterVersion | None) -> None:
        """Serve ``version`` (``None``: the base model) from the next answer on."""
        ...


class VersionWatcher:
    """Polls the registry and switches the generator to the version being served."""

    def __init__(
        self,
        registry: AdapterRegistry,
        generator: SwitchesVersions,
        *,
        interval_s: float = 5.0,
    ) -> None:
        self._registry = registry
        self._generator = generator
        self._interval = interval_s
        self._stop = threading.Event()
        self._seen: str | None = None
        self._thread: threading.Thread | None = None

    def check(self) -> bool:
        """Look once; True if a switch was asked for."""
        try:
            serving = self._registry.serving()
        except Exception:  # a database hiccup must not stop the watcher
            log.exception("reading the adapter registry failed")
            return False
        wanted = serving.id if serving is not None else None
        if wanted == self._seen:
            return False
        log.info(
            "The registry serves %s (was %s): switching",
            wanted or "the base model",
            self._seen or "the base model",
        )
        self._seen = wanted
        self._generator.use_version(serving)
        return True

    def start(self) -> VersionWatcher:
        """Check now, then every ``interval_s`` seconds in a daemon thread."""
        self.check()
        self._thread = threading.Thread(target=self._run, name="parley-versions", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._interval + 1)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.check()
