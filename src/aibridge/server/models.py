"""The served models: load through the MLflow registry, poll for alias moves, swap atomically.

Each configured URI (``models:/aibridge-EURUSD-H1@champion``) is a :class:`ModelSlot`. The
slot's :attr:`ModelSlot.current` is one immutable :class:`Served` object; the poller builds a
new one in the background and replaces the reference in a single assignment, so a request
sees either the old model or the new one, never a half-loaded state, and never waits.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aibridge.serving.types import ModelInfo, ModelLoadError, parse_model_uri

if TYPE_CHECKING:
    from aibridge.server.journal import Journal
    from aibridge.server.metrics import ServerMetrics
    from aibridge.serving.bundled import BundledModel

log = logging.getLogger("aibridge.server.models")

CHAMPION_ALIAS = "champion"
CHALLENGER_ALIAS = "challenger"
NO_CHAMPION = "no_champion"  # model_status and predict reason while there is no champion

__all__ = [
    "CHALLENGER_ALIAS",
    "CHAMPION_ALIAS",
    "NO_CHAMPION",
    "Loader",
    "ModelLoadError",
    "ModelSet",
    "ModelSlot",
    "Resolver",
    "Served",
    "parse_model_uri",
    "registry_backend",
    "slot_status",
]

# A resolver answers "which version is behind this URI"; a loader loads models:/NAME/VERSION
# (the full runtime's ServingModel or the lean LeanModel: both BundledModel).
Resolver = Callable[[str], ModelInfo]
Loader = Callable[[str], "BundledModel"]


@dataclass(frozen=True)
class Served:
    """A loaded model and the registry facts reported about it (alias from the config URI)."""

    model: BundledModel
    info: ModelInfo


class ModelSlot:
    """One configured model URI and whatever version of it is currently served."""

    def __init__(self, uri: str, served: Served) -> None:
        self.uri = uri
        self.current = served
        self.error: str | None = None
        # set while ``models:/NAME@champion`` has no champion: the slot answers HOLD
        # (reason ``no_champion``); ``current`` is then the challenger, for its metadata only
        self.no_champion: str | None = None
        self.failed_version: str | None = None
        self.reloads = 0

    @property
    def key(self) -> tuple[str, str]:
        info = self.current.info
        return (info.symbol.upper(), info.timeframe.upper())

    @property
    def label(self) -> str:
        return self.current.info.name


class ModelSet:
    """All served models, keyed by (symbol, timeframe), plus the registry poller."""

    def __init__(
        self,
        uris: list[str],
        *,
        resolver: Resolver,
        loader: Loader,
        journal: Journal | None = None,
        metrics: ServerMetrics | None = None,
    ) -> None:
        self.uris = list(uris)
        self._resolve = resolver
        self._load = loader
        self.journal = journal
        self.metrics = metrics
        self.slots: dict[tuple[str, str], ModelSlot] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.polls = 0

    # ------------------------------------------------------------------ startup
    def load_all(self) -> None:
        """Resolve and load every configured model; any failure stops the server from starting,
        except ``models:/NAME@champion`` without a champion while NAME has a challenger (the
        backtest gate promoted nothing): that slot starts and answers HOLD (``no_champion``)
        until a champion appears."""
        for uri in self.uris:
            name, alias, _ = parse_model_uri(uri)
            vacant = None
            try:
                served = self._load_version(uri, alias)
            except ModelLoadError as exc:
                served, vacant = self._no_champion_stand_in(uri, name, alias, exc)
            slot = ModelSlot(uri, served)
            slot.no_champion = vacant
            if slot.key in self.slots:
                other = self.slots[slot.key].uri
                raise ModelLoadError(f"{uri} and {other} both serve {' '.join(slot.key)}")
            self.slots[slot.key] = slot
            info = served.info
            if vacant:
                log.warning(vacant, extra={"model": info.name, "alias": alias})
                if self.journal:
                    self.journal.record_model_event(*slot.key, "no_champion", None, None, uri)
                continue
            log.info(
                f"serving {info.name} v{info.version} (alias {alias or '-'}, run {info.run_id})",
                extra={"model": info.name, "version": info.version, "alias": alias},
            )
            if self.journal:
                self.journal.record_model_event(*slot.key, "loaded", None, str(info.version), uri)
            if self.metrics:
                self.metrics.set_model(*slot.key, info, None)

    def _no_champion_stand_in(
        self, uri: str, name: str, alias: str | None, exc: ModelLoadError
    ) -> tuple[Served, str]:
        """The challenger's metadata for a champion URI without a champion, or ``exc``."""
        if alias != CHAMPION_ALIAS:
            raise exc
        try:
            served = self._load_version(f"models:/{name}@{CHALLENGER_ALIAS}", CHALLENGER_ALIAS)
        except ModelLoadError:
            raise exc from None
        return served, (
            f"{name} has no champion: the backtest gate promoted no version; answering "
            f"HOLD (no_champion) for {served.info.symbol} {served.info.timeframe}. Challenger "
            f"v{served.info.version} is not served; serve it explicitly with "
            f"models:/{name}@{CHALLENGER_ALIAS}, or promote a version."
        )

    def _load_version(self, uri: str, alias: str | None) -> Served:
        try:
            info = self._resolve(uri)
            model = self._load(f"models:/{info.name}/{info.version}")
        except Exception as exc:
            raise ModelLoadError(f"cannot load {uri}: {exc}") from exc
        return _served(model, alias)

    def get(self, symbol: str, timeframe: str) -> ModelSlot | None:
        return self.slots.get((symbol.upper(), timeframe.upper()))

    def served_names(self) -> list[str]:
        return [" ".join(k) for k in self.slots]

    # ------------------------------------------------------------------ lifecycle
    def poll_once(self) -> list[tuple[str, str, str]]:
        """Check every alias; load and swap moved ones. Returns (model, from, to) swaps."""
        swaps: list[tuple[str, str, str]] = []
        self.polls += 1
        for slot in list(self.slots.values()):
            _, alias, _ = parse_model_uri(slot.uri)
            old = slot.current.info
            if slot.no_champion:
                if self._champion_appeared(slot, alias):
                    swaps.append((old.name, "none", str(slot.current.info.version)))
                continue
            try:
                info = self._resolve(slot.uri)
            except Exception as exc:
                self._failed(slot, None, f"registry lookup failed: {type(exc).__name__}: {exc}")
                continue
            if self.metrics and alias:
                self.metrics.set_registry_version(info.name, alias, str(info.version))
            if str(info.version) == str(old.version):
                if slot.error:  # registry reachable again, or the alias moved back
                    log.info(f"{slot.label}: v{old.version} is current again; error cleared")
                    slot.error = None
                    slot.failed_version = None
                    self._clear_failing(slot)
                continue
            if slot.failed_version == str(info.version):
                continue  # already failed on this version; don't hammer the store every poll
            try:
                model = self._load(f"models:/{info.name}/{info.version}")
            except Exception as exc:
                self._failed(slot, str(info.version), f"{type(exc).__name__}: {exc}")
                continue
            new = _served(model, alias)
            slot.current = new  # the atomic swap
            slot.reloads += 1
            slot.error = None
            slot.failed_version = None
            swaps.append((info.name, str(old.version), str(info.version)))
            log.info(
                f"{info.name} v{old.version} → v{info.version} (alias {alias or '-'},"
                f" run {info.run_id})",
                extra={"model": info.name, "from": old.version, "to": info.version},
            )
            if self.journal:
                self.journal.record_model_event(
                    *slot.key, "swapped", str(old.version), str(info.version), slot.uri
                )
            if self.metrics:
                self.metrics.reloads.labels(slot.label).inc()
                self.metrics.set_model(*slot.key, new.info, old)
                self._clear_failing(slot)
        return swaps

    def _champion_appeared(self, slot: ModelSlot, alias: str | None) -> bool:
        """A slot without a champion: load the champion once the alias exists."""
        try:
            info = self._resolve(slot.uri)
        except Exception:  # still no champion (or the registry is down): keep answering HOLD
            return False
        if slot.failed_version == str(info.version):
            return False
        try:
            model = self._load(f"models:/{info.name}/{info.version}")
        except Exception as exc:
            slot.failed_version = str(info.version)
            log.error(f"{info.name}: champion v{info.version} failed to load: {exc}")
            return False
        new = _served(model, alias)
        slot.current = new
        slot.no_champion = None
        slot.error = None
        slot.failed_version = None
        slot.reloads += 1
        log.info(f"{info.name}: champion v{info.version} appeared; serving it (run {info.run_id})")
        if self.journal:
            self.journal.record_model_event(
                *slot.key, "champion_appeared", None, str(info.version), slot.uri
            )
        if self.metrics:
            self.metrics.set_model(*slot.key, new.info, None)
        return True

    def _failed(self, slot: ModelSlot, version: str | None, message: str) -> None:
        first = slot.error != message
        slot.error = message
        slot.failed_version = version
        if first:
            log.error(
                f"{slot.label}: keeping v{slot.current.info.version}; {message}",
                extra={"model": slot.label, "failed_version": version},
            )
            if self.journal:
                self.journal.record_model_event(
                    *slot.key, "reload_failed", str(slot.current.info.version), version, message
                )
            if self.metrics:
                self.metrics.reload_failures.labels(slot.label).inc()
        if self.metrics:
            self.metrics.reload_failing.labels(slot.label).set(1)

    def _clear_failing(self, slot: ModelSlot) -> None:
        if self.metrics:
            self.metrics.reload_failing.labels(slot.label).set(0)

    def start_polling(self, interval_s: float) -> None:
        """Poll in a daemon thread; loading happens there too, off the request loop."""
        if interval_s <= 0 or self._thread is not None:
            return

        def run() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.poll_once()
                except Exception:  # the poller must outlive any surprise
                    log.exception("registry poll crashed")

        self._thread = threading.Thread(target=run, name="registry-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)

    def describe(self) -> list[dict[str, Any]]:
        """``models`` list of the heartbeat and ``/healthz``."""
        out = []
        for (symbol, timeframe), slot in self.slots.items():
            cur = slot.current
            out.append(
                {
                    "symbol": symbol,
                    "timeframe": timeframe,
                    "name": cur.info.name,
                    "version": str(cur.info.version),
                    "alias": cur.info.alias,
                    "min_bars": int(cur.model.min_bars),
                    "model_status": slot_status(slot),
                    "model_error": slot.no_champion or slot.error,
                }
            )
        return out


def slot_status(slot: ModelSlot) -> str:
    """``no_champion`` | ``reload_failed`` | ``ok`` (the heartbeat's ``model_status``)."""
    if slot.no_champion:
        return NO_CHAMPION
    return "reload_failed" if slot.error else "ok"


def _served(model: BundledModel, alias: str | None) -> Served:
    """Report the model's own info (symbol/timeframe filled from its settings) + config alias."""
    return Served(model=model, info=replace(model.info, alias=alias))


def registry_backend(
    tracking_uri: str | None, cache_dir: Path | None = None, runtime: str = "full"
) -> tuple[Resolver, Loader]:
    """The real resolver/loader bound to one MLflow store: ``runtime="lean"`` uses
    :mod:`aibridge.serving` (registry lookups and downloads in a control step; the request
    path needs neither MLflow, pandas nor scikit-learn), ``"full"``
    :mod:`aibridge.serving_model` with :mod:`aibridge.registry`.

    ``cache_dir`` keeps downloaded versions across restarts (one folder per version).
    """
    if runtime == "lean":
        from aibridge.serving.resolve import lean_backend

        return lean_backend(tracking_uri, cache_dir)
    from aibridge.registry import registry_client, resolve_model_uri
    from aibridge.serving_model import load_serving_model

    client = registry_client(tracking_uri)

    def resolver(uri: str) -> ModelInfo:
        return resolve_model_uri(uri, client)

    def loader(uri: str) -> BundledModel:
        return load_serving_model(uri, tracking_uri, cache_dir=cache_dir)

    return resolver, loader
