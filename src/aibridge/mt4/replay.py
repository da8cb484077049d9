"""Replay an MT4 CSV bar by bar through the compiled EA against a real signal server.

The driver side of the stand-in: read the candles with the pipeline's own reader
(:func:`aibridge.ingest.read_mt4_csv`), hand the binary a plain numeric bars file and a
``key=value`` run config (instrument, account, inputs, faults), run it, and read back what the
terminal recorded: ``trades.csv``, ``summary.json``, the EA's Print log and its own journal.

Tick model (mt4_ea/standin/mt4.cpp): per bar an open tick (OnTimer when due, OnTick), SL/TP
inside the bar exactly as the backtest kernel, a close tick (OnTick). The EA acts on the open
tick of a new bar, which is where the backtest trades, so "open prices" of the backtest and
the stand-in's fills coincide.

>>> res = run_replay("EURUSD60.csv", "tcp://127.0.0.1:5555", Path("out"),  # doctest: +SKIP
...                  inputs={"InpDryRun": False}, instrument=load_instrument("EURUSD"))
>>> res.trades[["ticket", "side", "open_price", "close_reason"]]            # doctest: +SKIP
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aibridge.instruments import InstrumentSpec, spec_from_mapping
from aibridge.mt4.build import Built, build_ea

__all__ = ["FAULT_KEYS", "ReplayError", "ReplayResult", "load_bars", "run_replay"]

# Fault keys of run_replay(faults=...) and what the stand-in does with each.
FAULT_KEYS = {
    "order_send": "{n: code}: the n-th OrderSend call fails with code (e.g. 138, 136, 135, 129)",
    "order_send_timeout_opened": "[n, ...]: the n-th OrderSend opens the order but returns -1 "
    "with 128 (trade timeout)",
    "order_modify": "{n: code}: the n-th OrderModify call fails with code (130, 145)",
    "order_close": "{n: code}: the n-th OrderClose call fails with code",
    "context_busy": "k or {calls: k, from_bar: b}: IsTradeContextBusy/IsTradeAllowed/OrderSend "
    "see a busy trade context for the next k calls from bar b",
    "stop_level": "MODE_STOPLEVEL in points (overrides the instrument)",
    "freeze_level": "MODE_FREEZELEVEL in points",
    "trade_allowed": "false: AutoTrading off (IsTradeAllowed false, OrderSend 4109)",
    "dlls_allowed": "false: IsDllsAllowed() false",
    "pause": "{bar: tag}: before bar's open tick the binary prints `PAUSE tag bar` and waits "
    "(on_pause callback)",
    "pause_before_init": "tag: pause before OnInit",
}


class ReplayError(RuntimeError):
    """The replay could not run (bad input, build failure, the binary failed)."""


@dataclass(frozen=True)
class ReplayResult:
    """What the stand-in terminal recorded for one run."""

    trades: pd.DataFrame
    summary: dict[str, Any]
    journal_path: Path | None
    log_path: Path
    out_dir: Path
    files_dir: Path
    returncode: int
    seconds: float


def load_bars(
    csv_path: Path | str, spec: InstrumentSpec, spread_points: float | None = None
) -> pd.DataFrame:
    """Candles of an MT4 CSV with a ``spread`` column in points (the backtest's rule)."""
    from aibridge.ingest import read_mt4_csv

    frame = read_mt4_csv(csv_path).candles
    t = frame["time"]
    seconds = (
        t.to_numpy().astype("datetime64[s]").astype(np.int64)
        if np.issubdtype(t.dtype, np.datetime64)
        else t.to_numpy(dtype=np.int64)
    )
    if spread_points is not None:
        spread = np.full(len(frame), float(spread_points))
    elif "spread" in frame.columns:
        spread = frame["spread"].to_numpy(dtype=np.float64)
    else:
        spread = np.full(len(frame), float(spec.default_spread_points))
    return pd.DataFrame(
        {
            "time": seconds,
            "open": frame["open"].to_numpy(np.float64),
            "high": frame["high"].to_numpy(np.float64),
            "low": frame["low"].to_numpy(np.float64),
            "close": frame["close"].to_numpy(np.float64),
            "volume": frame["volume"].to_numpy(np.float64).astype(np.int64),
            "spread": spread,
        }
    )


def _spec(instrument: InstrumentSpec | Path | str) -> InstrumentSpec:
    if isinstance(instrument, InstrumentSpec):
        return instrument
    import yaml

    path = Path(instrument)
    if not path.is_file():
        raise ReplayError(f"instrument spec {path} not found")
    return spec_from_mapping(yaml.safe_load(path.read_text(encoding="utf-8")))


def _value(v: Any) -> str:
    text = ("true" if v else "false") if isinstance(v, bool) else str(v)
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")


def _calls(table: Mapping[Any, Any]) -> str:
    return ",".join(f"{int(k)}:{int(v)}" for k, v in sorted(table.items()))


def _fault_config(faults: Mapping[str, Any]) -> dict[str, str]:
    unknown = set(faults) - set(FAULT_KEYS)
    if unknown:
        raise ReplayError(f"unknown fault keys {sorted(unknown)}; known: {sorted(FAULT_KEYS)}")
    cfg: dict[str, str] = {}
    for key in ("order_send", "order_modify", "order_close"):
        if key in faults:
            cfg[f"fault.{key}"] = _calls(faults[key])
    if "order_send_timeout_opened" in faults:
        cfg["fault.order_send_timeout_opened_calls"] = ",".join(
            str(int(n)) for n in faults["order_send_timeout_opened"]
        )
    busy = faults.get("context_busy")
    if busy is not None:
        if isinstance(busy, Mapping):
            cfg["fault.context_busy_calls"] = str(int(busy.get("calls", 0)))
            cfg["fault.context_busy_from_bar"] = str(int(busy.get("from_bar", 0)))
        else:
            cfg["fault.context_busy_calls"] = str(int(busy))
    if "stop_level" in faults:
        cfg["stop_level"] = str(int(faults["stop_level"]))
    if "freeze_level" in faults:
        cfg["freeze_level"] = str(int(faults["freeze_level"]))
    for key in ("trade_allowed", "dlls_allowed"):
        if key in faults:
            cfg[key] = _value(bool(faults[key]))
    if "pause" in faults:
        cfg["pause"] = ",".join(f"{int(b)}:{tag}" for b, tag in sorted(faults["pause"].items()))
    if "pause_before_init" in faults:
        cfg["pause_before_init"] = str(faults["pause_before_init"])
    return cfg


def _symbol_period(csv_path: Path, symbol: str | None, period: int | None) -> tuple[str, int]:
    from aibridge.ingest.naming import parse_symbol_timeframe, timeframe_minutes

    if symbol and period:
        return symbol, period
    parsed = parse_symbol_timeframe(csv_path)
    if parsed is None and not (symbol and period):
        raise ReplayError(
            f"cannot tell symbol/timeframe from {csv_path.name}: pass symbol= and period_minutes="
        )
    sym, tf = parsed if parsed else ("", "")
    return symbol or sym, period or timeframe_minutes(tf)


def _read_trades(path: Path) -> pd.DataFrame:
    trades = pd.read_csv(path, keep_default_na=False, dtype={"comment": str, "close_reason": str})
    for col in ("open_time", "close_time"):
        trades[col] = pd.to_datetime(trades[col].where(trades[col] > 0), unit="s")
    return trades


def run_replay(
    csv_path: Path | str,
    endpoint: str,
    workdir: Path | str,
    *,
    inputs: Mapping[str, Any] | None = None,
    instrument: InstrumentSpec | Path | str,
    initial_equity: float = 10_000.0,
    leverage: int = 100,
    broker_utc_offset_s: int = 0,
    faults: Mapping[str, Any] | None = None,
    start_bar: int = 0,
    stop_bar: int | None = None,
    state_in: Path | str | None = None,
    state_out: Path | str | None = None,
    on_pause: Callable[[str, int], None] | None = None,
    symbol: str | None = None,
    period_minutes: int | None = None,
    spread_points: float | None = None,
    quote_to_account: float | None = None,
    tester: bool = False,
    swap: bool = False,
    account_number: int = 12345678,
    built: Built | None = None,
    timeout_s: float = 600.0,
    echo: bool = False,
) -> ReplayResult:
    """Run the compiled EA over ``csv_path`` from bar ``start_bar`` to ``stop_bar``.

    ``inputs`` override the EA's ``input`` defaults by name (``InpEndpoint`` defaults to
    ``endpoint``). ``workdir`` receives ``bars.txt``, ``run.cfg`` and ``out/`` (trades.csv,
    summary.json, ea.log) and ``MQL4/Files/`` (the EA's files; kept across runs in the same
    workdir, like a terminal's data folder). ``state_out`` with ``stop_bar``: the terminal
    state is saved after OnDeinit at that bar (an EA restart); ``state_in`` continues from
    the saved bar + 1 (unless a non-zero ``start_bar`` is given) with fresh EA globals.
    """
    started = time.perf_counter()
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise ReplayError(f"candle file {csv_path} not found")
    spec = _spec(instrument)
    sym, period = _symbol_period(csv_path, symbol or spec.symbol, period_minutes)
    work = Path(workdir)
    out = work / "out"
    files = work / "MQL4" / "Files"
    out.mkdir(parents=True, exist_ok=True)
    files.mkdir(parents=True, exist_ok=True)
    for stale in ("trades.csv", "summary.json", "ea.log", "alerts.log"):
        (out / stale).unlink(missing_ok=True)
    bars = load_bars(csv_path, spec, spread_points)
    bars_file = work / "bars.txt"
    with bars_file.open("w", encoding="ascii") as fh:
        for row in bars.itertuples(index=False):
            fh.write(
                f"{row.time} {row.open!r} {row.high!r} {row.low!r} {row.close!r} "
                f"{row.volume} {row.spread!r}\n"
            )
    if spec.tick_value_mode == 2 and quote_to_account is None:
        raise ReplayError(f"{spec.symbol} is a cross: pass quote_to_account=")
    cfg: dict[str, str] = {
        "bars_file": str(bars_file),
        "files_dir": str(files),
        "out_dir": str(out),
        "symbol": sym,
        "period": str(period),
        "digits": str(spec.digits),
        "point": repr(spec.point),
        "tick_size": repr(spec.tick),
        "contract_size": repr(spec.contract_size),
        "tick_value_mode": str(spec.tick_value_mode),
        "fixed_tick_value": repr(spec.fixed_tick_value),
        "base_currency": spec.base_currency,
        "quote_currency": spec.quote_currency,
        "account_currency": spec.account_currency,
        "lot_min": repr(spec.lot_min),
        "lot_max": repr(spec.lot_max),
        "lot_step": repr(spec.lot_step),
        "stop_level": str(spec.stop_level_points),
        "commission_per_lot_per_side": repr(spec.commission_per_lot_per_side),
        "swap_long_points": repr(spec.swap_long_points),
        "swap_short_points": repr(spec.swap_short_points),
        "triple_swap_weekday": str(spec.triple_swap_weekday),
        "swap": _value(swap),
        "initial_equity": repr(float(initial_equity)),
        "leverage": str(int(leverage)),
        "account_number": str(int(account_number)),
        "broker_utc_offset_s": str(int(broker_utc_offset_s)),
        "tester": _value(tester),
        "echo": _value(echo),
    }
    if state_in is None or start_bar:
        cfg["start_bar"] = str(int(start_bar))
    if quote_to_account is not None:
        cfg["quote_to_account"] = repr(float(quote_to_account))
    if stop_bar is not None:
        cfg["stop_bar"] = str(int(stop_bar))
    if state_in is not None:
        cfg["state_in"] = str(state_in)
    if state_out is not None:
        cfg["state_out"] = str(state_out)
    cfg.update(_fault_config(faults or {}))
    merged = {"InpEndpoint": endpoint, **(inputs or {})}
    for name, value in merged.items():
        cfg[f"input.{name}"] = _value(value)
    run_cfg = work / "run.cfg"
    run_cfg.write_text("".join(f"{k}={v}\n" for k, v in cfg.items()), encoding="utf-8")

    exe = (built or build_ea()).exe
    returncode, tail = _run_binary(exe, run_cfg, on_pause, timeout_s, echo)
    summary_path = out / "summary.json"
    if not summary_path.is_file():
        raise ReplayError(f"the stand-in exited with {returncode} and wrote no summary:\n{tail}")
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    if returncode != 0 and not summary.get("fatal"):
        raise ReplayError(f"the stand-in exited with {returncode}:\n{tail}")
    # the EA's journal: InpJournalFile, else the per-chart aibridge_<symbol>_<tf>_<magic>.csv
    named = str(merged.get("InpJournalFile") or "")
    csvs = sorted(
        files.rglob("*.csv"), key=lambda p: (p.name.startswith("aibridge_"), p.stat().st_mtime)
    )
    journals = [files / named] if named and (files / named).is_file() else csvs
    return ReplayResult(
        trades=_read_trades(out / "trades.csv"),
        summary=summary,
        journal_path=journals[-1] if journals else None,
        log_path=out / "ea.log",
        out_dir=out,
        files_dir=files,
        returncode=returncode,
        seconds=time.perf_counter() - started,
    )


def _run_binary(
    exe: Path,
    run_cfg: Path,
    on_pause: Callable[[str, int], None] | None,
    timeout_s: float,
    echo: bool,
) -> tuple[int, str]:
    """Run the stand-in, answering its PAUSE lines; returns (exit code, stderr tail)."""
    err_path = run_cfg.parent / "stderr.txt"
    with err_path.open("w") as err:
        proc = subprocess.Popen(
            [str(exe), str(run_cfg)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            bufsize=1,
        )
        timer = threading.Timer(timeout_s, proc.kill)
        timer.start()
        try:
            assert proc.stdout is not None and proc.stdin is not None
            for line in proc.stdout:
                if line.startswith("PAUSE "):
                    _, tag, bar = line.split()
                    if on_pause is not None:
                        on_pause(tag, int(bar))
                    proc.stdin.write("\n")
                    proc.stdin.flush()
                elif echo:
                    print(line, end="")
            proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    tail = err_path.read_text(errors="replace")[-4000:]
    if proc.returncode < 0:
        tail += f"\n(killed by signal {-proc.returncode}; timeout {timeout_s:.0f} s?)"
    return proc.returncode, tail


def check_server(endpoint: str, symbol: str, timeframe: str, timeout_ms: int = 3000) -> str:
    """One heartbeat with pyzmq; returns "" when the server answers, else why not."""
    import orjson
    import zmq

    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint)
        sock.send(
            orjson.dumps(
                {
                    "protocol_version": 1,
                    "type": "heartbeat",
                    "request_id": "ea-replay-check",
                    "symbol": symbol,
                    "timeframe": timeframe,
                    "client": "aibridge ea-replay",
                }
            )
        )
        if not sock.poll(timeout_ms, zmq.POLLIN):
            return (
                f"no signal server answers at {endpoint} (waited {timeout_ms} ms): "
                "start `aibridge serve`"
            )
        reply = orjson.loads(sock.recv())
        if reply.get("status") != "ok":
            return f"server at {endpoint} answered {reply.get('code')}: {reply.get('message')}"
        return ""
    except zmq.ZMQError as exc:
        return f"cannot connect to {endpoint}: {exc}"
    finally:
        sock.close(0)
