"""Champion/challenger gate: the rule that decides whether a new model may be served.

Pure function of two metric dicts, so the decision is reproducible from the numbers recorded
next to it (``reports/backtest/gate.json`` and the registry tags). Both metric dicts must come
from the same out-of-sample window and the same engine settings; the backtest stage makes sure
of that by running both models on the challenger's test window.

Rule (configurable in ``conf/backtest/default.yaml`` → ``gate``), checked in this order:

1. the challenger made at least ``min_trades`` trades (fewer say nothing about skill);
2. its max drawdown is at most ``max_drawdown_pct``;
3. there is no champion yet → promote; otherwise its ``metric`` must exceed the champion's
   by more than ``min_improvement``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aibridge.backtest.metrics import json_safe
from aibridge.backtest.settings import GateSettings


@dataclass(frozen=True)
class GateDecision:
    """Whether to promote, why, and every number the reason refers to."""

    promote: bool
    reason: str
    metric: str
    challenger: dict[str, float]
    champion: dict[str, float] | None
    rule: dict[str, Any] = field(default_factory=dict)

    def as_tags(self, prefix: str = "gate.") -> dict[str, str]:
        """Flat string tags for the MLflow registry version (decision + numbers + rule)."""
        tags = {
            f"{prefix}decision": "promote" if self.promote else "keep_champion",
            f"{prefix}reason": self.reason,
            f"{prefix}metric": self.metric,
        }
        for side, numbers in (("challenger", self.challenger), ("champion", self.champion or {})):
            for key in (self.metric, "max_drawdown_pct", "trade_count", "net_profit"):
                if key in numbers:
                    tags[f"{prefix}{side}.{key}"] = f"{numbers[key]:.6g}"
        for key, value in self.rule.items():
            tags[f"{prefix}rule.{key}"] = str(value)
        return tags

    def write(self, path: Path) -> None:
        """The DVC-tracked decision file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(json_safe(asdict(self)), indent=2, sort_keys=True, default=str))


def load_decision(path: Path) -> GateDecision:
    """Read ``gate.json`` back (the ``register`` stage applies it with
    :func:`aibridge.promotion.apply_gate`)."""
    data = json.loads(path.read_text())
    return GateDecision(
        promote=bool(data["promote"]),
        reason=str(data["reason"]),
        metric=str(data["metric"]),
        challenger=data["challenger"],
        champion=data["champion"],
        rule=data.get("rule", {}),
    )


def decide(
    challenger: Mapping[str, float],
    champion: Mapping[str, float] | None,
    rule: GateSettings,
) -> GateDecision:
    """Apply the gate rule (see the module docstring)."""
    m = rule.metric
    ch = {k: float(v) for k, v in challenger.items()}
    cp = None if champion is None else {k: float(v) for k, v in champion.items()}

    def result(promote: bool, reason: str) -> GateDecision:
        return GateDecision(promote, reason, m, ch, cp, rule.model_dump())

    if ch["trade_count"] < rule.min_trades:
        return result(False, f"challenger made {ch['trade_count']:.0f} trades < {rule.min_trades}")
    if ch["max_drawdown_pct"] > rule.max_drawdown_pct:
        return result(
            False,
            f"challenger max drawdown {ch['max_drawdown_pct']:.2f}% > {rule.max_drawdown_pct}%",
        )
    if cp is None:
        return result(True, "no champion yet")
    if ch[m] > cp[m] + rule.min_improvement:
        return result(
            True, f"challenger {m} {ch[m]:.4f} > champion {cp[m]:.4f} + {rule.min_improvement}"
        )
    return result(
        False, f"challenger {m} {ch[m]:.4f} <= champion {cp[m]:.4f} + {rule.min_improvement}"
    )
