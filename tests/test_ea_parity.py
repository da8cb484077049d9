"""EA vs backtest parity: the comparer on hand-made trade lists, and (slow) the compiled EA
through the MT4 stand-in against the backtest on a synthetic series where the model trades."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from aibridge.mt4.parity import compare_trades, reasons_from_journal, trade_frame

POINT = 1e-5
needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")


def backtest_trades() -> pd.DataFrame:
    """Three trades in the backtest's columns (trade_table)."""
    t = pd.to_datetime(["2024-01-02 01:00", "2024-01-02 05:00", "2024-01-03 10:00"])
    return pd.DataFrame(
        {
            "entry_time": t,
            "exit_time": t + pd.Timedelta(hours=3),
            "side": pd.Categorical(["BUY", "SELL", "BUY"]),
            "lots": [0.5, 0.49, 0.5],
            "entry_price": [1.10010, 1.10000, 1.10510],
            "exit_price": [1.10310, 1.10020, 1.10400],
            "exit_reason": pd.Categorical(["TP", "signal", "end"]),
        }
    )


def ea_trades() -> pd.DataFrame:
    """The same trades as the stand-in reports them (unix seconds, its own column names)."""
    bt = backtest_trades()

    def unix(col: pd.Series) -> pd.Series:
        return (col - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)

    return pd.DataFrame(
        {
            "ticket": [1, 2, 3],
            "side": bt["side"].astype(str),
            "lots": bt["lots"],
            "open_time": unix(bt["entry_time"]),
            "open_price": bt["entry_price"] + 0.4 * POINT,  # within one point
            "close_time": unix(bt["exit_time"]),
            "close_price": bt["exit_price"],
            "close_reason": ["tp", "signal", "end"],
        }
    )


def test_equal_lists_have_no_difference() -> None:
    result = compare_trades(backtest_trades(), ea_trades(), POINT)
    assert result.ok and result.matched == 3 and result.differing_trades == 0
    assert "0 differing trades" in result.table()


@pytest.mark.parametrize(
    ("column", "value", "field"),
    [
        ("close_price", 1.10310 + 1.5 * POINT, "exit_price"),
        ("open_price", 1.10010 - 2 * POINT, "entry_price"),
        ("lots", 0.51, "lots"),
        ("close_reason", "sl", "exit_reason"),
        ("close_time", 0, "exit_time"),
    ],
)
def test_one_perturbed_trade_is_reported(column: str, value: object, field: str) -> None:
    ea = ea_trades()
    ea.loc[0, column] = value
    result = compare_trades(backtest_trades(), ea, POINT)
    assert not result.ok and result.differing_trades == 1 and result.matched == 2
    assert result.differences["field"].tolist() == [field]
    assert field in result.table()


def test_a_missing_trade_does_not_shift_the_others() -> None:
    result = compare_trades(backtest_trades(), ea_trades().drop(index=1), POINT)
    assert result.differences["field"].tolist() == ["missing in EA"]
    assert result.matched == 2
    extra = compare_trades(backtest_trades().drop(index=2), ea_trades(), POINT)
    assert extra.differences["field"].tolist() == ["extra in EA"]


def test_reason_vocabularies_meet() -> None:
    frame = trade_frame(ea_trades().assign(close_reason=["[tp]", "SIGNAL", "end"]))
    assert frame["exit_reason"].tolist() == ["tp", "signal", "end"]
    events = [
        {"event": "filled", "ticket": 1},
        {"event": "closed", "ticket": 1, "reason": "tp"},
        {"event": "closed", "ticket": 2, "reason": "time"},
    ]
    assert reasons_from_journal(events) == {1: "tp", 2: "time"}


@pytest.fixture(scope="module")
def synthetic_case(tmp_path_factory: pytest.TempPathFactory):
    """A planted-edge series, a champion registered on it by `dvc repro`, and one parity run
    (real `aibridge serve`, the compiled EA through the stand-in, the backtest)."""
    from aibridge.mt4 import synthetic
    from aibridge.mt4.parity import run_case

    tmp = tmp_path_factory.mktemp("ea_parity")
    model = synthetic.register_synthetic_model(tmp / "project", synthetic.PlantedEdge(seed=11))
    return run_case(
        "synthetic",
        model.csv_path,
        model.tracking_uri,
        model.model_uri,
        tmp / "run",
        project_root=model.root,
    )


@pytest.mark.slow
@needs_gxx
def test_the_ea_makes_the_backtests_trades_on_a_trading_series(synthetic_case) -> None:
    case = synthetic_case
    print(case.comparison.table())
    assert len(case.backtest_trades) >= 20, "the planted edge must make the model trade"
    assert case.comparison.ok, case.comparison.table()
    assert case.comparison.matched == len(case.ea_trades) == len(case.backtest_trades)
    assert case.served_risk.get("close_on_opposite") is not None  # the served exit policy
    reasons = set(trade_frame(case.ea_trades)["exit_reason"])
    assert {"sl", "tp"} <= reasons


@pytest.mark.slow
@needs_gxx
def test_the_comparer_reports_one_perturbed_ea_trade(synthetic_case) -> None:
    ea = synthetic_case.ea_trades.copy()
    k = len(ea) // 2
    ea.loc[k, "close_price"] = ea.loc[k, "close_price"] + 2 * POINT
    result = compare_trades(synthetic_case.backtest_trades, ea, POINT)
    assert result.differing_trades == 1
    assert result.differences["field"].tolist() == ["exit_price"]
    assert str(result.differences["entry_time"].iloc[0]) in result.table()


def test_planted_edge_series_is_seeded_valid_and_carries_its_edge(tmp_path) -> None:
    from aibridge.ingest import read_mt4_csv
    from aibridge.mt4.synthetic import PlantedEdge, planted_edge_series, write_series

    edge = planted_edge_series(PlantedEdge(bars=4000, seed=3))
    assert edge.equals(planted_edge_series(PlantedEdge(bars=4000, seed=3)))
    assert not edge.equals(planted_edge_series(PlantedEdge(bars=4000, seed=4)))
    assert (pd.DatetimeIndex(edge["time"]).weekday < 5).all()
    assert (edge["high"] >= edge[["open", "close"]].max(axis=1)).all()
    assert (edge["low"] <= edge[["open", "close"]].min(axis=1)).all()
    trig = edge[edge["trigger"] != 0]
    assert 60 < len(trig) < 200
    assert (trig["drift"] == trig["trigger"]).mean() > 0.7  # P = 0.8 planted
    control = planted_edge_series(PlantedEdge(bars=4000, seed=3, edge_probability=0.5))
    ctrig = control[control["trigger"] != 0]
    assert 0.35 < (ctrig["drift"] == ctrig["trigger"]).mean() < 0.65
    csv = write_series(tmp_path, PlantedEdge(bars=500, seed=1))
    parsed = read_mt4_csv(csv)
    assert len(parsed.candles) == 500 and not parsed.issues
    assert parsed.form == "history_center"
