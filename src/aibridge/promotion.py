"""Moving the ``champion`` alias: by the gate, or by hand (``aibridge promote`` / ``rollback``).

Every move leaves a trail: tags on the version that gained the alias (who/why/when and the
version it replaced) and a JSON line appended to ``reports/promotions.jsonl``, so "why is v3
being served?" always has an answer. Works on any MLflow tracking URI the caller configured.

The gate's verdict comes in as a :class:`GateVerdict` (``promote``, ``reason``, ``as_tags()``;
``aibridge.backtest.gate.GateDecision`` is one), so this registry-level module does not import
the backtest service above it.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from aibridge.errors import AibridgeError
from aibridge.registry import alias_version, set_version_tags

PROMOTION_TAG = "promotion"
PREVIOUS_TAG = "promotion.previous_champion"
ROLLED_BACK_TAG = "promotion.rolled_back"  # on a version a rollback took the alias from


class PromotionError(AibridgeError, ValueError):
    """A promotion or rollback that cannot happen as asked; the message says what to pass."""


class GateVerdict(Protocol):
    """What :func:`apply_gate` needs of the backtest gate's decision."""

    @property
    def promote(self) -> bool: ...

    @property
    def reason(self) -> str: ...

    def as_tags(self) -> Mapping[str, str]: ...


@dataclass(frozen=True)
class AliasMove:
    """One change of the champion alias."""

    model_name: str
    alias: str
    from_version: str | None
    to_version: str
    action: str  # gate_promote | gate_keep | promote | rollback
    reason: str
    user: str
    at: str


def _record(client: MlflowClient, move: AliasMove, journal: Path | None) -> AliasMove:
    # One line for the who/what/when/why (the full record is in the journal), so a promoted
    # version stays a handful of tags in the MLflow UI.
    tags = {PROMOTION_TAG: f"{move.action} by {move.user} at {move.at}: {move.reason}"}
    if move.action == "rollback":
        # Keep the restored version's own history (its previous champion), so a second
        # rollback walks further back instead of toggling; mark the version left behind.
        tags["promotion.rolled_back_from"] = move.from_version or ""
        if move.from_version and move.from_version != move.to_version:
            client.set_model_version_tag(
                move.model_name, move.from_version, ROLLED_BACK_TAG, move.reason or "true"
            )
    else:
        tags[PREVIOUS_TAG] = move.from_version or ""
        # promoted again (by hand or by the gate): no longer a rolled-back version
        if ROLLED_BACK_TAG in client.get_model_version(move.model_name, move.to_version).tags:
            client.delete_model_version_tag(move.model_name, move.to_version, ROLLED_BACK_TAG)
    set_version_tags(client, move.model_name, move.to_version, tags)
    if journal is not None:
        journal.parent.mkdir(parents=True, exist_ok=True)
        with journal.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(asdict(move), sort_keys=True) + "\n")
    return move


def _move(
    client: MlflowClient,
    name: str,
    version: str,
    alias: str,
    action: str,
    reason: str,
    journal: Path | None,
) -> AliasMove:
    try:
        client.get_model_version(name, version)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise PromotionError(
            f"{name} has no version {version}; pass a registered version "
            f"(MLflow UI → Models → {name})"
        ) from None
    before = alias_version(client, name, alias)
    if before != version:
        client.set_registered_model_alias(name, alias, version)
    move = AliasMove(
        model_name=name,
        alias=alias,
        from_version=before,
        to_version=str(version),
        action=action,
        reason=reason,
        user=getpass.getuser(),
        at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    return _record(client, move, journal)


def apply_gate(
    name: str,
    challenger_version: str,
    decision: GateVerdict,
    champion_alias: str = "champion",
    journal: Path | None = None,
    client: MlflowClient | None = None,
) -> AliasMove | None:
    """Register stage: tag the challenger with the decision; move the alias if it won.

    ``decision``: anything with ``promote``, ``reason`` and ``as_tags()`` (a
    ``backtest.gate.GateDecision``)."""
    client = client or MlflowClient()
    set_version_tags(client, name, challenger_version, decision.as_tags())
    if not decision.promote:
        return None
    return _move(
        client, name, challenger_version, champion_alias, "gate_promote", decision.reason, journal
    )


def promote(
    name: str,
    version: str,
    reason: str,
    champion_alias: str = "champion",
    journal: Path | None = None,
    client: MlflowClient | None = None,
) -> AliasMove:
    """Point the champion alias at ``version`` by hand; ``reason`` is required and recorded."""
    if not reason.strip():
        raise PromotionError('a promotion needs a reason: pass --reason "why"')
    return _move(
        client or MlflowClient(), name, version, champion_alias, "promote", reason, journal
    )


def rollback(
    name: str,
    reason: str,
    champion_alias: str = "champion",
    to_version: str | None = None,
    journal: Path | None = None,
    client: MlflowClient | None = None,
) -> AliasMove:
    """Walk the champion alias back one step in the promotion history (or to ``to_version``).

    The previous champion is read from the current champion's ``promotion.previous_champion``
    tag (written by every promotion; a rollback leaves it alone), skipping versions that were
    themselves rolled back (``promotion.rolled_back``). So v1 → v2 → v3, rollback → v2,
    rollback → v1: a second rollback never re-promotes the version the first one removed.
    """
    if not reason.strip():
        raise PromotionError('a rollback needs a reason: pass --reason "why"')
    client = client or MlflowClient()
    if to_version is None:
        current = alias_version(client, name, champion_alias)
        if current is None:
            raise PromotionError(
                f"{name} has no {champion_alias!r} alias to roll back; promote a version first"
            )
        tags = client.get_model_version(name, current).tags
        to_version = tags.get(PREVIOUS_TAG) or None
        seen = {current}
        while to_version is not None and to_version not in seen:
            seen.add(to_version)
            previous = client.get_model_version(name, to_version).tags
            if ROLLED_BACK_TAG not in previous:
                break
            to_version = previous.get(PREVIOUS_TAG) or None
        else:
            to_version = None
        if to_version is None:
            raise PromotionError(
                f"{name} v{current} has no earlier champion in its promotion history; "
                "pass a version explicitly (--to)"
            )
    return _move(client, name, to_version, champion_alias, "rollback", reason, journal)
