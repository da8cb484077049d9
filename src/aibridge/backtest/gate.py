"""Champion/challenger gate: the rule that decides whether a new model may be served.

Pure function of two metric dicts and a variant count, so the decision is reproducible from
the numbers recorded next to it (``gate/decision.json`` on the train run,
``reports/registration.json``). Both metric dicts must come from the same out-of-sample window
and the same engine settings: the ``backtest`` stage measures the challenger on its test window
(``reports/backtest/challenger.json``), the ``register`` stage runs the champion on that window,
counts the variants in MLflow and calls :func:`decide`.

Rule (configurable in ``conf/backtest/default.yaml`` → ``gate``), checked in this order:

1. the challenger made at least ``min_trades`` trades (fewer say nothing about skill);
2. its max drawdown is at most ``max_drawdown_pct`` and it was not stopped out (ruined);
3. the absolute floor (``floor: true``): its net expectancy after costs (R per trade) is
   positive *and* the lower bound of its bootstrap interval is above zero, **or** its
   Deflated Sharpe Ratio is at least ``min_dsr``. Without the floor a model that merely loses
   less than the champion, or the first model of a project, would be served;
4. there is no champion yet → promote (the floor was cleared); otherwise its ``metric`` must
   exceed the champion's by more than ``min_improvement``.

Deflated Sharpe Ratio (Bailey & López de Prado, 2014): the probability that the true Sharpe
is above the best Sharpe that ``N`` unskilled variants would show by luck,

    SR0 = sqrt(V) * ((1 - γ) Φ⁻¹(1 - 1/N) + γ Φ⁻¹(1 - 1/(N e)))      (γ = 0.5772…)
    DSR = Φ( (SR - SR0) sqrt(T - 1) / sqrt(1 - γ3 SR + (γ4 - 1)/4 SR²) )

with SR the challenger's daily (not annualised) Sharpe over T days, γ3/γ4 the skewness and
kurtosis of its daily returns, N the number of variants tried (MLflow runs of the
experiment) and V the variance of their daily Sharpe ratios (from the runs' ``bt_sharpe``;
with fewer than two recorded, the variance of a Sharpe estimate under no skill, 1/T).
N = 1 gives SR0 = 0: the probabilistic Sharpe ratio against zero.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aibridge.backtest.metrics import TRADING_DAYS, json_safe
from aibridge.backtest.settings import GateSettings

EULER_GAMMA = 0.5772156649015329


@dataclass(frozen=True)
class Trials:
    """How many variants were tried and how much their Sharpe ratios varied (annualised)."""

    count: int
    sharpe_variance: float | None  # of the annualised Sharpe; None: unknown
    source: str = ""


def _norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _norm_ppf(p: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(p)


def expected_max_sharpe(n_trials: int, variance: float) -> float:
    """SR0: the expected maximum of ``n_trials`` Sharpe ratios of unskilled variants whose
    Sharpe ratios have ``variance`` (same units as the result); 0 for one trial."""
    if n_trials <= 1 or variance <= 0:
        return 0.0
    n = float(n_trials)
    return math.sqrt(variance) * (
        (1.0 - EULER_GAMMA) * _norm_ppf(1.0 - 1.0 / n)
        + EULER_GAMMA * _norm_ppf(1.0 - 1.0 / (n * math.e))
    )


def deflated_sharpe(
    sharpe_annual: float,
    days: int,
    skew: float,
    kurtosis: float,
    n_trials: int,
    sharpe_variance_annual: float | None,
) -> tuple[float, float]:
    """(DSR, SR0 annualised) of an annualised daily Sharpe over ``days`` returns.

    Works in daily units as the paper does (annualised / sqrt(252)); NaN skew/kurtosis are
    taken as normal (0, 3). ``sharpe_variance_annual`` None → 1/T in daily units.
    """
    t = int(days)
    if t < 3:
        return 0.0, 0.0
    root = math.sqrt(TRADING_DAYS)
    sr = sharpe_annual / root
    var = 1.0 / t if sharpe_variance_annual is None else sharpe_variance_annual / TRADING_DAYS
    sr0 = expected_max_sharpe(n_trials, var)
    g3 = 0.0 if not math.isfinite(skew) else skew
    g4 = 3.0 if not math.isfinite(kurtosis) else kurtosis
    den = 1.0 - g3 * sr + (g4 - 1.0) / 4.0 * sr * sr
    if den <= 0:
        den = 1e-12
    z = (sr - sr0) * math.sqrt(t - 1) / math.sqrt(den)
    return _norm_cdf(z), sr0 * root


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
            for key in (
                self.metric,
                "max_drawdown_pct",
                "trade_count",
                "net_profit",
                "expectancy_r",
                "expectancy_r_ci_low",
                "dsr",
            ):
                if key in numbers:
                    tags[f"{prefix}{side}.{key}"] = f"{numbers[key]:.6g}"
        for key, value in self.rule.items():
            tags[f"{prefix}rule.{key}"] = str(value)
        return tags

    def write(self, path: Path) -> None:
        """The DVC-tracked decision file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(json_safe(asdict(self)), indent=2, sort_keys=True, default=str))


def numbers(d: Mapping[str, Any]) -> dict[str, float]:
    """JSON's null (written for NaN/inf) back to NaN.

    >>> numbers({"sharpe": None, "trade_count": 3})
    {'sharpe': nan, 'trade_count': 3.0}
    """
    return {k: math.nan if v is None else float(v) for k, v in d.items()}


def load_decision(path: Path) -> GateDecision:
    """Read a decision written by :meth:`GateDecision.write` back."""
    data = json.loads(path.read_text())
    return GateDecision(
        promote=bool(data["promote"]),
        reason=str(data["reason"]),
        metric=str(data["metric"]),
        challenger=numbers(data["challenger"]),
        champion=None if data["champion"] is None else numbers(data["champion"]),
        rule=data.get("rule", {}),
    )


def floor_check(ch: Mapping[str, float], rule: GateSettings) -> tuple[bool, str]:
    """The absolute floor (step 3 of the rule): (cleared, plain-language reason)."""
    exp = float(ch.get("expectancy_r", 0.0))
    lo = float(ch.get("expectancy_r_ci_low", math.nan))
    dsr = float(ch.get("dsr", math.nan))
    exp_ok = exp > 0 and math.isfinite(lo) and lo > 0
    dsr_ok = math.isfinite(dsr) and dsr >= rule.min_dsr
    detail = (
        f"net expectancy {exp:+.3f} R/trade (95% CI low {lo:+.3f}), "
        f"DSR {dsr:.3f} (min {rule.min_dsr}, {ch.get('trials', 1):.0f} variants tried)"
    )
    if exp_ok or dsr_ok:
        return True, f"edge: {detail}"
    return False, f"no edge: {detail}"


def with_dsr(metrics: Mapping[str, float], trials: Trials | None) -> dict[str, float]:
    """``metrics`` plus ``dsr``, ``dsr_sr0`` (annualised), ``trials`` and
    ``trials_sharpe_variance`` (NaN: unknown); without ``trials`` the ones recorded in
    ``metrics`` (a replayed decision) or one variant."""
    m = numbers(metrics)
    if trials is None and "trials" in m:  # a recorded decision replayed
        recorded = m.get("trials_sharpe_variance", math.nan)
        trials = Trials(int(m["trials"]), recorded if math.isfinite(recorded) else None)
    n = 1 if trials is None else max(int(trials.count), 1)
    var = None if trials is None else trials.sharpe_variance
    dsr, sr0 = deflated_sharpe(
        m.get("sharpe", 0.0),
        int(m.get("days", 0.0)),
        m.get("daily_return_skew", math.nan),
        m.get("daily_return_kurtosis", math.nan),
        n,
        var,
    )
    return m | {
        "dsr": dsr,
        "dsr_sr0": sr0,
        "trials": float(n),
        "trials_sharpe_variance": math.nan if var is None else float(var),
    }


def decide(
    challenger: Mapping[str, float],
    champion: Mapping[str, float] | None,
    rule: GateSettings,
    trials: Trials | None = None,
) -> GateDecision:
    """Apply the gate rule (see the module docstring); ``trials`` deflates the Sharpe."""
    m = rule.metric
    ch = with_dsr(challenger, trials)
    cp = None if champion is None else numbers(champion)

    def result(promote: bool, reason: str) -> GateDecision:
        return GateDecision(promote, reason, m, ch, cp, rule.model_dump())

    if ch["trade_count"] < rule.min_trades:
        return result(
            False,
            f"no edge shown: challenger made {ch['trade_count']:.0f} trades < {rule.min_trades} "
            "(too few to judge)",
        )
    if ch.get("ruined", 0.0) > 0:
        return result(False, "challenger was stopped out (margin stop-out: ruined)")
    if ch["max_drawdown_pct"] > rule.max_drawdown_pct:
        return result(
            False,
            f"challenger max drawdown {ch['max_drawdown_pct']:.2f}% > {rule.max_drawdown_pct}%",
        )
    floor_reason = ""
    if rule.floor:
        ok, floor_reason = floor_check(ch, rule)
        if not ok:
            return result(False, floor_reason)
        floor_reason = f"; {floor_reason}"
    if cp is None:
        return result(True, f"no champion yet{floor_reason}")
    if ch[m] > cp[m] + rule.min_improvement:
        return result(
            True,
            f"challenger {m} {ch[m]:.4f} > champion {cp[m]:.4f} + {rule.min_improvement}"
            f"{floor_reason}",
        )
    return result(
        False, f"challenger {m} {ch[m]:.4f} <= champion {cp[m]:.4f} + {rule.min_improvement}"
    )
