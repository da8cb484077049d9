"""EA vs backtest parity: the compiled EA's trades must be the backtest's, trade by trade.

The EA (compiled against the MT4 stand-in, :mod:`aibridge.mt4.replay`) trades a CSV bar by
bar against a real ``aibridge serve``; the backtest (:func:`aibridge.backtest.engine.run_backtest`)
trades the same bars with the same model's decisions (the pyfunc over the same candles), the
served risk rules and exit policy (``conf/risk``), the instrument (``conf/instrument``) and the
engine settings (``conf/backtest``). Both trade lists are compared on entry time, side, lots,
entry price, exit time, exit price (within one point) and exit reason; any difference is
printed trade by trade, and the command exits non-zero.

``python -m aibridge.mt4.parity`` runs the bundled sample (the champion of the project's
``mlflow.db`` after ``dvc repro``) and a synthetic planted-edge series on which a freshly
registered model trades (:mod:`aibridge.mt4.synthetic`), and writes
``reports/ea_parity/summary.json``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# Exit reasons in one vocabulary: the backtest's (SL, TP, signal, time, end), the protocol's
# closed-event reasons (sl, tp, signal, time) and the stand-in's (sl, tp, close, end).
REASONS = {"sl": "sl", "tp": "tp", "signal": "signal", "time": "time", "end": "end"}
COMPARED = ("side", "lots", "entry_price", "exit_time", "exit_price", "exit_reason")


def normalise_reason(value: Any) -> str:
    """``SL``/``[sl]``/``sl`` → ``sl``; unknown reasons pass through lowercased."""
    text = str(value).strip().lower().strip("[]")
    return REASONS.get(text, text)


def trade_frame(trades: pd.DataFrame) -> pd.DataFrame:
    """A trade list (backtest, ea-sim or stand-in columns) in the compared form.

    Accepts ``entry_time``/``open_time``, ``exit_time``/``close_time``, ``entry_price``/
    ``open_price``, ``exit_price``/``close_price``, ``exit_reason``/``close_reason``; times
    as datetimes or unix seconds.
    """
    rename = {
        "open_time": "entry_time",
        "close_time": "exit_time",
        "open_price": "entry_price",
        "close_price": "exit_price",
        "close_reason": "exit_reason",
    }
    t = trades.rename(
        columns={k: v for k, v in rename.items() if k not in trades or v not in trades}
    )
    out = pd.DataFrame(
        {
            "entry_time": _times(t["entry_time"]),
            "side": t["side"].astype(str).str.upper().to_numpy(),
            "lots": t["lots"].to_numpy(dtype=np.float64),
            "entry_price": t["entry_price"].to_numpy(dtype=np.float64),
            "exit_time": _times(t["exit_time"]),
            "exit_price": t["exit_price"].to_numpy(dtype=np.float64),
            "exit_reason": [normalise_reason(r) for r in t["exit_reason"]],
        }
    )
    return out.sort_values(["entry_time", "side"], kind="stable").reset_index(drop=True)


def _times(col: pd.Series) -> np.ndarray:
    if np.issubdtype(col.dtype, np.datetime64):
        return pd.to_datetime(col).to_numpy(dtype="datetime64[s]")
    return pd.to_datetime(col.astype("int64"), unit="s").to_numpy(dtype="datetime64[s]")


@dataclass
class Comparison:
    """Result of comparing two trade lists (``expected`` = the backtest)."""

    expected: int
    actual: int
    differences: pd.DataFrame  # trade, entry_time, field, backtest, ea
    matched: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.differences.empty

    @property
    def differing_trades(self) -> int:
        if self.differences.empty:
            return 0
        return int(self.differences["entry_time"].nunique())

    def table(self, limit: int = 50) -> str:
        """The differences as a plain text table, one line per differing field."""
        if self.ok:
            return f"0 differing trades ({self.matched} matched)"
        d = self.differences.head(limit)
        lines = [
            f"{self.differing_trades} differing trades "
            f"(backtest {self.expected}, EA {self.actual}, matched {self.matched}):",
            f"{'#':>4}  {'entry time':<19}  {'field':<12}  {'backtest':>20}  {'EA':>20}",
        ]
        for row in d.itertuples(index=False):
            lines.append(
                f"{row.trade:>4}  {row.entry_time!s:<19}  {row.field:<12}  "
                f"{_fmt(row.backtest):>20}  {_fmt(row.ea):>20}"
            )
        if len(self.differences) > limit:
            lines.append(f"... {len(self.differences) - limit} more")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "backtest_trades": self.expected,
            "ea_trades": self.actual,
            "matched": self.matched,
            "differing_trades": self.differing_trades,
            "differences": [
                {k: _json(v) for k, v in row.items()}
                for row in self.differences.head(200).to_dict(orient="records")
            ],
            "notes": self.notes,
        }


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "-" if np.isnan(v) else f"{v:.6f}".rstrip("0").rstrip(".")
    return "-" if v is None else str(v)


def _json(v: Any) -> Any:
    if isinstance(v, (np.floating, float)):
        return None if np.isnan(v) else float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (pd.Timestamp, np.datetime64)):
        return str(pd.Timestamp(v))
    return v


def compare_trades(
    backtest: pd.DataFrame,
    ea: pd.DataFrame,
    point: float,
    *,
    price_tolerance_points: float = 1.0,
    lot_tolerance: float = 1e-9,
) -> Comparison:
    """Trade by trade, matched on entry time (and side): a trade only one side has is one
    difference (``field`` = ``missing in EA`` / ``extra in EA``), so one skipped entry does
    not shift every later comparison."""
    a = trade_frame(backtest)
    b = trade_frame(ea)
    a["nth"] = a.groupby(["entry_time", "side"]).cumcount()
    b["nth"] = b.groupby(["entry_time", "side"]).cumcount()
    merged = a.merge(
        b, on=["entry_time", "side", "nth"], how="outer", suffixes=("_bt", "_ea"), indicator="where"
    ).sort_values(["entry_time", "side"], kind="stable")
    tol = price_tolerance_points * point + 1e-9 * point
    rows: list[dict[str, Any]] = []
    matched = 0
    for n, r in enumerate(merged.itertuples(index=False), start=1):
        base = {"trade": n, "entry_time": pd.Timestamp(r.entry_time)}
        if r.where != "both":
            where = "missing in EA" if r.where == "left_only" else "extra in EA"
            src = "_bt" if r.where == "left_only" else "_ea"
            desc = (
                f"{r.side} {getattr(r, 'lots' + src):g} @ {getattr(r, 'entry_price' + src):.6g} "
                f"→ {getattr(r, 'exit_reason' + src)}"
            )
            rows.append(
                base
                | {
                    "field": where,
                    "backtest": desc if src == "_bt" else None,
                    "ea": desc if src == "_ea" else None,
                }
            )
            continue
        diffs = []
        if abs(r.lots_bt - r.lots_ea) > lot_tolerance:
            diffs.append(("lots", r.lots_bt, r.lots_ea))
        for col in ("entry_price", "exit_price"):
            x, y = getattr(r, col + "_bt"), getattr(r, col + "_ea")
            if not abs(x - y) <= tol:
                diffs.append((col, x, y))
        if r.exit_time_bt != r.exit_time_ea:
            diffs.append(("exit_time", pd.Timestamp(r.exit_time_bt), pd.Timestamp(r.exit_time_ea)))
        if r.exit_reason_bt != r.exit_reason_ea:
            diffs.append(("exit_reason", r.exit_reason_bt, r.exit_reason_ea))
        if diffs:
            rows.extend(base | {"field": f, "backtest": x, "ea": y} for f, x, y in diffs)
        else:
            matched += 1
    differences = pd.DataFrame(rows, columns=["trade", "entry_time", "field", "backtest", "ea"])
    return Comparison(expected=len(a), actual=len(b), differences=differences, matched=matched)


def reasons_from_journal(events: Iterable[dict[str, Any]]) -> dict[int, str]:
    """ticket → exit reason from the server journal's ``closed`` trade events."""
    out: dict[int, str] = {}
    for e in events:
        if e.get("event") == "closed" and e.get("ticket") is not None and e.get("reason"):
            out[int(e["ticket"])] = normalise_reason(e["reason"])
    return out


# --------------------------------------------------------------------------- one case


@dataclass
class ParityCase:
    """One CSV through the compiled EA and through the backtest."""

    name: str
    csv_path: str
    model_uri: str
    comparison: Comparison
    backtest_trades: pd.DataFrame
    ea_trades: pd.DataFrame
    served_risk: dict[str, Any]
    seconds: dict[str, float]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "csv": self.csv_path,
            "model_uri": self.model_uri,
            "ok": self.comparison.ok,
            "trades": len(self.backtest_trades),
            "exit_reasons_backtest": {
                str(k): int(v)
                for k, v in trade_frame(self.backtest_trades)["exit_reason"].value_counts().items()
            }
            if len(self.backtest_trades)
            else {},
            "comparison": self.comparison.to_dict(),
            "served_risk": self.served_risk,
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
            "notes": self.notes,
        }


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _heartbeat(
    endpoint: str, symbol: str, timeframe: str, timeout_ms: int
) -> dict[str, Any] | None:
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
                    "request_id": "parity-hb",
                    "symbol": symbol,
                    "timeframe": timeframe,
                    "client": "aibridge ea-parity",
                }
            )
        )
        if not sock.poll(timeout_ms):
            return None
        return dict(orjson.loads(sock.recv()))
    finally:
        sock.close(0)


class ServedModel:
    """``aibridge serve`` for one model URI on a free loopback port, in its own process."""

    def __init__(
        self,
        model_uri: str,
        tracking_uri: str,
        workdir: Path,
        cwd: Path | None = None,
        symbol: str = "EURUSD",
        timeframe: str = "H1",
    ) -> None:
        self.symbol, self.timeframe = symbol, timeframe
        self.model_uri = model_uri
        self.tracking_uri = tracking_uri
        self.workdir = workdir
        self.cwd = cwd
        self.port = _free_port()
        self.endpoint = f"tcp://127.0.0.1:{self.port}"
        self.journal = workdir / "journal.sqlite"
        self.proc: Any = None
        self.heartbeat: dict[str, Any] = {}

    def __enter__(self) -> ServedModel:
        import subprocess
        import sys
        import time

        self.workdir.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable, "-m", "aibridge.server", "serve",
            "--model", self.model_uri, "--tracking-uri", self.tracking_uri,
            "--port", str(self.port), "--journal", str(self.journal),
            "--no-metrics", "--poll-interval", "0",
            "--model-cache-dir", str(self.workdir / "models"),
            "--log-path", str(self.workdir / "server.log"),
        ]  # fmt: skip
        self.log = (self.workdir / "server.stderr").open("w")
        # The served store is the one given; no other project's pointers (AIBRIDGE_HOME).
        drop = ("MLFLOW_", "AIBRIDGE_HOME", "AIBRIDGE_CONF_DIR")
        env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(drop)}
        self.proc = subprocess.Popen(
            cmd, cwd=self.cwd, stdout=self.log, stderr=subprocess.STDOUT, env=env
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"aibridge serve exited with {self.proc.returncode}:\n"
                    + (self.workdir / "server.stderr").read_text()[-3000:]
                )
            hb = _heartbeat(self.endpoint, self.symbol, self.timeframe, 500)
            if hb and hb.get("status") == "ok" and hb.get("model"):
                self.heartbeat = hb
                return self
            time.sleep(0.1)
        self.__exit__(None, None, None)
        raise RuntimeError(f"aibridge serve did not answer at {self.endpoint} within 120 s")

    def __exit__(self, *exc: object) -> None:
        import signal
        import subprocess

        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def served_risk_settings(heartbeat: dict[str, Any]) -> tuple[Any, list[str]]:
    """The risk rules and exit policy the server sent (conf/risk for fields it did not send)."""
    from aibridge.risk import RiskSettings, load_risk_settings

    notes: list[str] = []
    served = dict(heartbeat.get("risk") or {})
    known = set(RiskSettings.model_fields)
    base = load_risk_settings().model_dump()
    missing = sorted(k for k in ("close_on_opposite", "max_hold_bars") if k not in served)
    if missing:
        notes.append(f"heartbeat has no {', '.join(missing)}: conf/risk values used")
    return RiskSettings.model_validate(
        base | {k: v for k, v in served.items() if k in known}
    ), notes


def _ea_journal_reasons(path: Path | None) -> dict[int, str]:
    """ticket → reason from the EA's own CSV journal (columns found by name), if it has them."""
    if path is None or not Path(path).is_file():
        return {}
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, on_bad_lines="skip")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        return {}
    cols = {c.lower(): c for c in frame.columns}
    if not {"ticket", "reason"} <= set(cols):
        return {}
    event = cols.get("event") or cols.get("kind")
    out: dict[int, str] = {}
    for row in frame.itertuples(index=False):
        rec = dict(zip(frame.columns, row, strict=True))
        if event and str(rec[event]).lower() != "closed":
            continue
        try:
            ticket = int(float(rec[cols["ticket"]]))
        except ValueError:
            continue
        if rec[cols["reason"]]:
            out[ticket] = normalise_reason(rec[cols["reason"]])
    return out


def ea_trade_list(
    trades: pd.DataFrame, server_reasons: dict[int, str], ea_reasons: dict[int, str]
) -> tuple[pd.DataFrame, list[str]]:
    """The stand-in's trades with EA closes (``close``) given the reason the EA reported:
    the server journal's ``closed`` event first, the EA's CSV journal second."""
    notes: list[str] = []
    out = trades.copy()
    reasons = []
    unresolved = 0
    for ticket, reason in zip(out["ticket"], out["close_reason"], strict=True):
        r = normalise_reason(reason)
        if r == "close":
            r = server_reasons.get(int(ticket)) or ea_reasons.get(int(ticket)) or "close"
            unresolved += r == "close"
        reasons.append(r)
    out["close_reason"] = reasons
    if unresolved:
        notes.append(f"{unresolved} EA closes without a reported reason")
    return out, notes


def run_case(
    name: str,
    csv_path: Path,
    tracking_uri: str,
    model_uri: str,
    workdir: Path,
    *,
    project_root: Path | None = None,
    symbol: str | None = None,
    echo: bool = False,
) -> ParityCase:
    """Serve ``model_uri``, replay ``csv_path`` through the compiled EA, backtest the same
    bars with the pyfunc's decisions and the served rules, compare the trade lists."""
    import tempfile
    import time

    import mlflow

    from aibridge.backtest.engine import run_backtest, spread_points
    from aibridge.backtest.signals import CANDLE_COLUMNS, load_settings, signals_from_decisions
    from aibridge.ingest import read_mt4_csv
    from aibridge.ingest.naming import parse_symbol_timeframe
    from aibridge.instruments import load_instrument
    from aibridge.mt4.replay import run_replay
    from aibridge.registry import download_version, registry_client, resolve_model_uri
    from aibridge.server.journal import tail

    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    parsed = parse_symbol_timeframe(csv_path) or ("EURUSD", "H1")
    spec = load_instrument(symbol or parsed[0])
    engine = load_settings(_no_cfg()).engine
    workdir.mkdir(parents=True, exist_ok=True)
    served = ServedModel(
        model_uri, tracking_uri, workdir / "server", project_root, spec.symbol, parsed[1]
    )
    with served as server:
        seconds["serve_start"] = time.perf_counter() - t0
        hb = server.heartbeat
        risk, notes = served_risk_settings(hb)
        t1 = time.perf_counter()
        replay = run_replay(
            csv_path,
            server.endpoint,
            workdir / "replay",
            inputs={"InpDryRun": False},
            instrument=spec,
            initial_equity=engine.initial_equity,
            spread_points=engine.spread_points,
            swap=engine.swap,
            broker_utc_offset_s=int(hb.get("utc_offset_s") or 0),
            echo=echo,
        )
        seconds["replay"] = time.perf_counter() - t1
    events = tail(server.journal, "trade_events", 1_000_000) if server.journal.is_file() else []
    ea, more = ea_trade_list(
        replay.trades, reasons_from_journal(events), _ea_journal_reasons(replay.journal_path)
    )
    notes += more

    t2 = time.perf_counter()
    # A client bound to this store; MLflow's process-wide URIs are left alone.
    client = registry_client(tracking_uri)
    info = resolve_model_uri(model_uri, client)
    candles = read_mt4_csv(csv_path).candles
    # Decided with the spread the EA sends with each predict (the backtest's per-bar spread:
    # it enters the expected-value rule's costs). The model's own predict function, without
    # MLflow's input-schema step, which would drop the column the signature does not name.
    frame = candles[CANDLE_COLUMNS].assign(spread=spread_points(candles, spec, engine))
    with tempfile.TemporaryDirectory(prefix="aibridge-parity-model-") as model_dir:
        download_version(info.name, info.version, Path(model_dir), tracking_uri, client)
        model = mlflow.pyfunc.load_model(model_dir)
        decisions = model.unwrap_python_model().predict(None, frame)
    sig, sl, tp = signals_from_decisions(decisions, spec.point)
    bt = run_backtest(candles[CANDLE_COLUMNS], sig, sl, tp, spec, risk, engine)
    seconds["backtest"] = time.perf_counter() - t2
    comparison = compare_trades(bt.trades, ea, spec.point)
    seconds["total"] = time.perf_counter() - t0
    return ParityCase(
        name=name,
        csv_path=str(csv_path),
        model_uri=model_uri,
        comparison=comparison,
        backtest_trades=bt.trades,
        ea_trades=ea,
        served_risk=dict(hb.get("risk") or {}),
        seconds=seconds,
        notes=notes,
    )


def _no_cfg() -> Any:
    """An empty config: ``load_settings`` then reads ``conf/backtest/default.yaml``."""
    from omegaconf import OmegaConf

    return OmegaConf.create({})


# --------------------------------------------------------------------------- command


def _sample_store(root: Path, tracking_uri: str | None) -> tuple[str, str] | None:
    """The project's served model after ``dvc repro``: (tracking URI, model URI) of the
    champion, else of the challenger (the sample has no edge, so the gate registers its model
    as challenger only), or None when the store has neither."""
    from aibridge.registry import alias_version, registry_client

    uri = tracking_uri or f"sqlite:///{root / 'mlflow.db'}"
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        return None
    name = "aibridge-EURUSD-H1"
    client = registry_client(uri)
    for alias in ("champion", "challenger"):
        if alias_version(client, name, alias) is not None:
            return uri, f"models:/{name}@{alias}"
    return None


def _write_case(out: Path, case: ParityCase) -> None:
    case.backtest_trades.to_csv(out / f"{case.name}_backtest_trades.csv", index=False)
    case.ea_trades.to_csv(out / f"{case.name}_ea_trades.csv", index=False)
    case.comparison.differences.to_csv(out / f"{case.name}_differences.csv", index=False)


def main(argv: list[str] | None = None) -> int:
    """``python -m aibridge.mt4.parity``: the sample and a synthetic trading series through
    the compiled EA and the backtest; exit 1 on any differing trade."""
    import argparse
    import json
    import tempfile
    import time
    from concurrent.futures import ThreadPoolExecutor

    from aibridge.mt4 import synthetic
    from aibridge.paths import project_root, sample_data_path

    ap = argparse.ArgumentParser(prog="python -m aibridge.mt4.parity", description=main.__doc__)
    ap.add_argument("--out", type=Path, default=Path("reports/ea_parity"))
    ap.add_argument("--workdir", type=Path, default=None, help="kept; default: a temp dir")
    ap.add_argument("--sample-tracking-uri", default=None, help="default: ./mlflow.db")
    ap.add_argument("--seed", type=int, default=synthetic.PlantedEdge.seed)
    ap.add_argument("--bars", type=int, default=synthetic.PlantedEdge.bars)
    ap.add_argument("--skip-sample", action="store_true")
    ap.add_argument("--skip-synthetic", action="store_true")
    ap.add_argument("--echo", action="store_true", help="show the EA's Print output")
    a = ap.parse_args(argv)

    started = time.perf_counter()
    root = project_root()
    out = a.out if a.out.is_absolute() else root / a.out
    out.mkdir(parents=True, exist_ok=True)
    tmp = None
    if a.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="aibridge-ea-parity-")
        work = Path(tmp.name)
    else:
        work = a.workdir.resolve()
        work.mkdir(parents=True, exist_ok=True)
    cases: list[ParityCase] = []
    failures: list[str] = []
    setup: dict[str, float] = {}
    # The synthetic champion's `dvc repro` (a subprocess, ~30 s) runs while the sample case
    # replays: the two overlap instead of adding up.
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        pending_model = None
        store = None
        note: list[str] = []
        csv = sample_data_path()
        project = root
        if not a.skip_sample:
            store = _sample_store(root, a.sample_tracking_uri)
            if store is None:  # two repros at once only fight over the cores: one after the other
                print("sample: no model in ./mlflow.db; dvc repro of the sample in a temp copy")
                t = time.perf_counter()
                model = synthetic.repro_project(work / "sample-project", csv)
                setup["sample_repro"] = time.perf_counter() - t
                store = (model.tracking_uri, model.model_uri)
                project = model.root
                note.append(f"{store[1]} from a temp dvc repro (./mlflow.db had none)")
        if not a.skip_synthetic:
            params = synthetic.PlantedEdge(bars=a.bars, seed=a.seed)
            pending_model = pool.submit(
                synthetic.register_synthetic_model, work / "synthetic-project", params
            )
        if store is not None:
            case = run_case(
                "sample", csv, store[0], store[1], work / "sample", project_root=project,
                echo=a.echo,
            )  # fmt: skip
            case.notes += note
            cases.append(case)
        if pending_model is not None:
            model = pending_model.result()
            setup["synthetic_repro"] = model.seconds
            case = run_case(
                "synthetic", model.csv_path, model.tracking_uri, model.model_uri,
                work / "synthetic", project_root=model.root, echo=a.echo,
            )  # fmt: skip
            cases.append(case)
            if len(case.backtest_trades) == 0:
                failures.append("synthetic: the model made no trade (nothing was compared)")
    finally:
        pool.shutdown(wait=True)
        if tmp is not None:
            tmp.cleanup()
    for case in cases:
        _write_case(out, case)
        status = "OK" if case.comparison.ok else "DIFFERENT"
        print(
            f"{case.name}: {status} — backtest {case.comparison.expected} trades, EA "
            f"{case.comparison.actual}; {case.comparison.table()}"
        )
        for n in case.notes:
            print(f"  note: {n}")
        if not case.comparison.ok:
            failures.append(f"{case.name}: {case.comparison.differing_trades} differing trades")
    summary = {
        "ok": not failures,
        "failures": failures,
        "seconds": round(time.perf_counter() - started, 1),
        "setup_seconds": {k: round(v, 1) for k, v in setup.items()},
        "cases": [c.to_dict() for c in cases],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"ea-parity: {'OK' if not failures else 'FAILED'} in {summary['seconds']} s → {out}")
    for f in failures:
        print(f"  {f}")
    return 0 if not failures else 1


if __name__ == "__main__":
    raise SystemExit(main())
