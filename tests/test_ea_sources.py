"""Source checks for the MQL4 Expert Advisor in ``mt4_ea/`` (no MetaTrader on this machine).

What a missing MetaEditor would catch cheaply, and what keeps the EA in step with Python:

* every ``#include`` resolves to our own files (no mql-zmq: the transport declares libzmq's C
  API itself; tests/test_ea_transport.py checks it);
* the ``input`` declarations match the inputs table of ``mt4_ea/README.md``;
* every JSON message the EA builds has the keys (and key order) of its golden fixture and
  only fields the pydantic request model accepts; every reply key the EA reads exists in
  the reply fixture;
* every MQL4 risk / lot-size function names the Python function it mirrors, which exists
  with the same parameters, and the shared constants agree;
* with g++ available, the EA's pure includes (JSON, protocol builders/readers, risk, lot
  sizing, trade helpers, CSV) are compiled through the MT4 stand-in (the rewriter of
  :mod:`aibridge.mt4.rewrite` and the runtime in ``mt4_ea/standin``) and executed by
  ``mt4_ea/standin/parts_driver.cpp``: the builders' output is accepted by
  ``aibridge.protocol.parse_request``, the readers return the fixture values, and the risk
  functions return exactly what ``aibridge.risk`` returns on a table of real contract specs.
  The whole EA runs bar by bar in tests/test_ea_standin.py.
"""

from __future__ import annotations

import csv
import importlib
import inspect
import io
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from aibridge import instruments, protocol, risk

ROOT = Path(__file__).resolve().parents[1]
EA_DIR = ROOT / "mt4_ea"
EA_FILE = EA_DIR / "Experts" / "AIBridge_EA.mq4"
INC_DIR = EA_DIR / "Include"
OUR_INC = INC_DIR / "AIBridge"
README = EA_DIR / "README.md"
FIXTURES = ROOT / "tests" / "fixtures" / "protocol"
PARTS_DRIVER = EA_DIR / "standin" / "parts_driver.cpp"


# --------------------------------------------------------------------------- helpers


def _strip_comments(src: str) -> str:
    """Remove // and /* */ comments, keeping string literals (and line numbers) intact."""
    out = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            out.append(src[i : j + 1])
            i = j + 1
        elif src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            chunk = src[i : (n if j < 0 else j + 2)]
            out.append("\n" * chunk.count("\n"))
            i = n if j < 0 else j + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _sources() -> dict[Path, str]:
    files = [EA_FILE, *sorted(OUR_INC.glob("*.mqh"))]
    return {p: p.read_text(encoding="utf-8") for p in files}


def _function_body(src: str, start: int) -> str:
    """Text between the first '{' at/after ``start`` and its matching '}'."""
    i = src.index("{", start)
    depth = 0
    for j in range(i, len(src)):
        if src[j] == "{":
            depth += 1
        elif src[j] == "}":
            depth -= 1
            if depth == 0:
                return src[i + 1 : j]
    raise AssertionError("unbalanced braces")


def _fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def _json_paths(value: Any, prefix: str = "", index_arrays: bool = False) -> list[str]:
    """Key paths of a JSON value: objects join with '.', arrays as [] (or [i])."""
    paths: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            p = f"{prefix}.{k}" if prefix else k
            paths.append(p)
            paths.extend(_json_paths(v, p, index_arrays))
    elif isinstance(value, list):
        items = enumerate(value) if index_arrays else enumerate(value[:1])
        for i, v in items:
            if not index_arrays and not isinstance(v, dict | list):
                continue  # scalar elements: the builder writes them with Val*(), no key
            p = f"{prefix}[{i}]" if index_arrays else f"{prefix}[]"
            paths.append(p)
            paths.extend(_json_paths(v, p, index_arrays))
    return paths


# Writer calls in Protocol.mqh builders: w.Str("key",...), w.ObjBeginKey("key"), w.ArrEnd(), ...
_WRITER_CALL = re.compile(
    r"\bw\.(ObjBegin|ObjBeginKey|ObjEnd|ArrBegin|ArrBeginKey|ArrEnd|Str|Num|Int|Bool|Null|"
    r"ValStr|ValNum|ValInt)\(\s*(?:\"([^\"]*)\")?"
)


def _builder_skeleton(body: str) -> tuple[list[tuple[str, bool]], dict[str, int]]:
    """Replay a builder's writer calls: [(path, optional)] in emit order, and array widths.

    A call on a line right after an ``if(...)`` line (or on the same line) is optional.
    """
    lines = body.splitlines()
    stack: list[str] = []  # path of the open container; "" is the root object
    emitted: list[tuple[str, bool, bool]] = []
    widths: dict[str, int] = {}
    for idx, line in enumerate(lines):
        prev = lines[idx - 1].strip() if idx else ""
        optional = line.strip().startswith("if(") or prev.startswith("if(")
        alternative = prev == "else"
        for m in _WRITER_CALL.finditer(line):
            op, key = m.group(1), m.group(2)
            parent = stack[-1] if stack else None
            if op == "ObjBegin" or op == "ArrBegin":
                path = "" if parent is None else f"{parent}[]"
                if parent is not None:
                    emitted.append((path, optional, alternative))
                stack.append(path)
            elif op in ("ObjBeginKey", "ArrBeginKey"):
                assert key is not None, line
                path = f"{parent}.{key}" if parent else key
                emitted.append((path, optional, alternative))
                stack.append(path)
            elif op in ("ObjEnd", "ArrEnd"):
                stack.pop()
            elif op.startswith("Val"):
                widths[parent or ""] = widths.get(parent or "", 0) + 1
            else:
                assert key is not None, line
                emitted.append((f"{parent}.{key}" if parent else key, optional, alternative))
    assert not stack, "unbalanced ObjBegin/ObjEnd or ArrBegin/ArrEnd in a builder"
    # if(x) w.Num("sl",...); else w.Null("sl"): one key, always sent (other repeats stay and fail)
    merged: list[tuple[str, bool]] = []
    for path, optional, alternative in emitted:
        seen = [i for i, (p, _) in enumerate(merged) if p == path]
        if alternative and seen:
            merged[seen[-1]] = (path, False)
        else:
            merged.append((path, optional))
    return merged, widths


def _tagged_functions(src: str, name_re: str) -> dict[str, tuple[list[str], str]]:
    """Functions whose header comment has '| fixture: X.json' lines -> (fixtures, body)."""
    found: dict[str, tuple[list[str], str]] = {}
    for m in re.finditer(rf"^\w[\w\s]*?\b({name_re})\s*\(", src, re.M):
        header = src[: m.start()].rsplit("\n\n", 1)[-1]
        block = header.split("+-----")[-2] if header.count("+-----") >= 2 else header
        fixtures = re.findall(r"fixture:\s*([\w.]+\.json)", block)
        found[m.group(1)] = (fixtures, _function_body(src, m.end()))
    return found


# --------------------------------------------------------------------------- event flow


def test_ea_heartbeats_from_ontick_in_the_tester() -> None:
    ea = _strip_comments(EA_FILE.read_text(encoding="utf-8"))
    on_tick = _function_body(ea, ea.index("void OnTick()"))
    assert re.search(r"if\(IsTesting\(\)[^\n]*\n\s*Heartbeat\(\);", on_tick)
    on_timer = _function_body(ea, ea.index("void OnTimer()"))
    assert "Heartbeat();" in on_timer
    # the daily drawdown is measured on every tick and timer event, not only before an entry
    assert "CheckDrawdown(" in on_tick and "CheckDrawdown(" in on_timer
    check = _function_body(ea, ea.index("void CheckDrawdown("))
    assert "AIB_DailyDrawdownBreached(" in check
    init = _function_body(ea, ea.index("int OnInit()"))
    assert (
        init.index("g_transport.Init(") < init.index("Heartbeat();") < init.index("EventSetTimer(")
    )
    # never trade without a good heartbeat; dry run short-circuits before OrderSend
    new_bar = _function_body(ea, ea.index("void OnNewBar()"))
    assert "if(!g_hbOk)" in new_bar
    try_trade = _function_body(ea, ea.index("void TryTrade("))
    order = [
        try_trade.index(x)
        for x in (
            "CheckDrawdown(",
            "AIB_WidenToStopLevel(",
            "AIB_LotsForRisk(",
            "AIB_EntryVeto(",
            "AccountFreeMarginCheck(",
            "if(InpDryRun)",
            "SendOrder(",
        )
    ]
    assert order == sorted(order), "risk checks must all run before the order"
    assert re.search(r"if\(veto!=AIB_ENTRY_OK\)\s*\{[^}]*return;", try_trade)
    assert "OrderSend(" not in try_trade


# --------------------------------------------------------------------------- includes


def test_every_include_resolves() -> None:
    seen = 0
    for path, src in _sources().items():
        for m in re.finditer(r'^\s*#include\s+[<"]([^>"]+)[>"]', src, re.M):
            seen += 1
            inc = m.group(1)
            assert inc.startswith("AIBridge/"), f"{path.name}: {inc} is not one of our includes"
            assert (INC_DIR / inc).is_file(), f"{path.name}: {inc} does not exist"
    assert seen >= 8
    every = [*EA_DIR.rglob("*.mq4"), *EA_DIR.rglob("*.mqh")]
    assert not [p for p in every if re.search(r"#include\s*<Zmq/", p.read_text())], "mql-zmq"


# --------------------------------------------------------------------------- inputs


def _ea_inputs() -> list[tuple[str, str, str]]:
    rows = []
    for m in re.finditer(
        r"^input\s+(\w+)\s+(\w+)\s*=\s*(.+?);\s*//", EA_FILE.read_text(encoding="utf-8"), re.M
    ):
        rows.append((m.group(2), m.group(1), m.group(3).strip()))
    return rows


def _readme_inputs() -> list[tuple[str, str, str]]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Inputs", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0].startswith("`Inp"):
            rows.append((cells[0].strip("`"), cells[1].strip("`"), cells[2].strip("`")))
    return rows


def _norm_default(value: str) -> str:
    v = value.strip().strip('"')
    try:
        return repr(float(v))
    except ValueError:
        return v


def test_readme_inputs_table_matches_the_input_declarations() -> None:
    ea = _ea_inputs()
    doc = _readme_inputs()
    assert len(ea) >= 15, ea
    assert [r[0] for r in doc] == [r[0] for r in ea], (
        "README inputs table out of date (names/order)"
    )
    for (name, typ, default), (_, dtyp, ddefault) in zip(ea, doc, strict=True):
        assert (typ, _norm_default(default)) == (dtyp, _norm_default(ddefault)), name
    assert dict((n, d) for n, _, d in ea)["InpDryRun"] == "true", "DryRun must default to true"


# --------------------------------------------------------------------------- protocol


_REQUEST_MODELS = {
    "AIB_BuildHeartbeat": protocol.HeartbeatRequest,
    "AIB_BuildPredict": protocol.PredictRequest,
    "AIB_BuildTradeEvent": protocol.TradeEventRequest,
}


def _builders() -> dict[str, tuple[list[str], str]]:
    src = (OUR_INC / "Protocol.mqh").read_text(encoding="utf-8")
    return _tagged_functions(src, r"AIB_Build\w+")


def test_each_builder_names_existing_fixtures() -> None:
    builders = _builders()
    assert set(builders) == set(_REQUEST_MODELS), builders.keys()
    for name, (fixtures, _) in builders.items():
        assert fixtures, f"{name} names no fixture"
        for fx in fixtures:
            assert (FIXTURES / fx).is_file(), f"{name}: fixture {fx} missing"


def test_builders_emit_the_fixture_keys_in_fixture_order() -> None:
    for name, (fixtures, body) in _builders().items():
        emitted, widths = _builder_skeleton(body)
        paths = [p for p, _ in emitted]
        required = [p for p, opt in emitted if not opt]
        assert len(paths) == len(set(paths)), f"{name} emits a key twice"
        model_fields = set(_REQUEST_MODELS[name].model_fields)
        top = [p for p in paths if "." not in p and "[" not in p]
        rejected = set(top) - model_fields
        assert not rejected, f"{name}: keys the server rejects: {rejected}"
        for fx in fixtures:
            request = _fixture(fx)["request"]
            fx_paths = _json_paths(request)
            assert set(fx_paths) <= set(paths), f"{name} lacks {set(fx_paths) - set(paths)} ({fx})"
            assert set(required) <= set(fx_paths), (
                f"{name} always sends {set(required) - set(fx_paths)}, absent from {fx}"
            )
            in_fixture = [p for p in top if p in request]
            assert in_fixture == list(request), f"{name}: key order differs from {fx}"
            for arr, width in widths.items():
                sample = request
                for part in arr.replace("[]", "").split("."):
                    sample = sample[part]
                assert all(len(row) == width for row in sample), f"{name}: {arr} width"


def _readers() -> dict[str, tuple[list[str], str]]:
    src = (OUR_INC / "Protocol.mqh").read_text(encoding="utf-8")
    return _tagged_functions(src, r"AIB_Read\w+")


def test_readers_only_read_keys_present_in_their_reply_fixture() -> None:
    readers = _readers()
    assert {"AIB_ReadStatus", "AIB_ReadHeartbeat", "AIB_ReadPrediction"} <= set(readers)
    for name, (fixtures, body) in readers.items():
        keys = re.findall(r"doc\.(?:Get\w+|Type|Has|IsNull)\(\"([^\"]+)\"", body)
        assert keys, f"{name} reads nothing?"
        assert fixtures, f"{name} names no fixture"
        for fx in fixtures:
            reply_paths = set(_json_paths(_fixture(fx)["reply"], index_arrays=True))
            absent = [k for k in keys if k not in reply_paths]
            assert not absent, f"{name} reads {absent}, not in {fx} reply"


def test_timeframe_table_matches_protocol() -> None:
    src = (OUR_INC / "Protocol.mqh").read_text(encoding="utf-8")
    body = _function_body(src, src.index("string AIB_TimeframeName("))
    table = {int(m): tf for m, tf in re.findall(r"case\s+(\d+):\s*return\s+\"(\w+)\";", body)}
    assert table == protocol.MT4_PERIOD_MINUTES


# --------------------------------------------------------------------------- risk mirrors


def _mql_functions(path: Path) -> list[tuple[str, list[str], str]]:
    """(name, param names without out-params, mirrors target) for each AIB_ function."""
    src = path.read_text(encoding="utf-8")
    out = []
    for m in re.finditer(r"^\w+\s+(AIB_\w+)\s*\(([^)]*)\)", src, re.M):
        before = src[: m.start()]
        header = before.rsplit("//+---", 2)[-2] if before.count("//+---") >= 2 else ""
        mirror = re.search(r"mirrors:\s*([\w.]+)", header)
        params = []
        for p in m.group(2).split(","):
            p = p.strip()
            if not p or "&" in p:
                continue
            params.append(re.split(r"\s+", p)[-1])
        out.append((m.group(1), params, mirror.group(1) if mirror else ""))
    return out


def test_every_risk_function_mirrors_an_existing_python_function() -> None:
    checked = 0
    for fname in ("LotSize.mqh", "Risk.mqh"):
        for name, params, target in _mql_functions(OUR_INC / fname):
            assert target, f"{fname}: {name} does not say which Python function it mirrors"
            module_name, _, attr = target.rpartition(".")
            assert module_name in ("aibridge.risk", "aibridge.instruments"), target
            obj = getattr(importlib.import_module(module_name), attr, None)
            assert obj is not None, f"{name} mirrors {target}, which does not exist"
            if callable(obj):
                py_params = list(inspect.signature(obj).parameters)
                assert params == py_params, f"{name}{params} vs {target}{py_params}"
            checked += 1
    assert checked >= 11


def test_shared_constants_agree() -> None:
    defines: dict[str, str] = {}
    for fname in ("LotSize.mqh", "Risk.mqh"):
        for m in re.finditer(r"^#define\s+(AIB_\w+)\s+(\S+)", (OUR_INC / fname).read_text(), re.M):
            defines[m.group(1)] = m.group(2)
    expected = {
        "AIB_LOT_OK": risk.LOT_OK,
        "AIB_LOT_CLAMPED_MAX": risk.LOT_CLAMPED_MAX,
        "AIB_LOT_BELOW_MIN": risk.LOT_BELOW_MIN,
        "AIB_LOT_RAISED_TO_MIN": risk.LOT_RAISED_TO_MIN,
        "AIB_LOT_INVALID_INPUT": risk.LOT_INVALID_INPUT,
        "AIB_STEP_EPS": risk._STEP_EPS,
        "AIB_LOT_DECIMALS": risk._LOT_DECIMALS,
        "AIB_TICK_VALUE_FIXED": instruments.TICK_VALUE_FIXED,
        "AIB_TICK_VALUE_BASE_IS_ACCOUNT": instruments.TICK_VALUE_BASE_IS_ACCOUNT,
        "AIB_TICK_VALUE_CROSS": instruments.TICK_VALUE_CROSS,
        **{
            f"AIB_{name}": getattr(risk, name)
            for name in dir(risk)
            if name.startswith("ENTRY_") and isinstance(getattr(risk, name), int)
        },
    }
    for name, value in expected.items():
        assert name in defines, name
        assert float(defines[name]) == float(value), f"{name}={defines[name]} vs Python {value}"


# --------------------------------------------------------------------------- compiled


_PURE_INCLUDES = ("Json.mqh", "Text.mqh", "Protocol.mqh", "LotSize.mqh", "Risk.mqh", "Trade.mqh")


@pytest.fixture(scope="module")
def driver() -> Path:
    """parts_driver.cpp on the pure includes, through the stand-in's rewriter and runtime."""
    if shutil.which("g++") is None:
        pytest.skip("g++ not installed: compiled checks of the MQL4 includes skipped")
    from aibridge.mt4.build import build_parts

    return build_parts([f"AIBridge/{name}" for name in _PURE_INCLUDES], PARTS_DRIVER)


def _run(exe: Path, *args: str, stdin: str = "") -> str:
    res = subprocess.run(
        [str(exe), *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )
    assert res.returncode == 0, res.stderr
    return res.stdout


def _kv(text: str) -> dict[str, str]:
    return dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line)


@pytest.mark.slow  # compiles the includes (g++)
def test_compiled_json_reader_flattens_every_fixture(driver: Path) -> None:
    for path in sorted(FIXTURES.glob("*.json")):
        fx = json.loads(path.read_text(encoding="utf-8"))
        for part in ("request", "reply"):
            if part not in fx:
                continue
            text = json.dumps(fx[part], separators=(",", ":"))
            rows = [r.split("\t") for r in _run(driver, "parse", stdin=text).splitlines()]
            assert rows[0][0] != "ERROR", (path.name, rows[0])
            got = [r[0] for r in rows[1:]]
            assert got == _json_paths(fx[part], index_arrays=True), (path.name, part)
    assert _run(driver, "parse", stdin='{"a":[1,2,}').startswith("ERROR")
    assert _run(driver, "parse", stdin='{"a":1} x').startswith("ERROR")
    assert _run(driver, "parse", stdin='{"a":"\\u0041\\n\\"b"}').splitlines()[1] == "a\t1\tA"
    nums = ["1e-05", "-2.5E+3", "0.5731", "1497571200", "-0"]
    got = [float(x) for x in _run(driver, "number", stdin="\n".join(nums) + "\n").split()]
    assert got == [float(n) for n in nums]


@pytest.mark.slow  # compiles the includes (g++)
def test_compiled_builders_produce_what_the_server_accepts(driver: Path) -> None:
    hb = _fixture("heartbeat.json")["request"]
    positions = "".join(
        f"{p['ticket']} {p['side']} {p['lots']!r} {p['open_price']!r} {p['sl'] or 0!r} "
        f"{p['tp'] or 0!r} {p['open_time']}\n"
        for p in hb["positions"]
    )
    text = _run(
        driver,
        "build_heartbeat",
        hb["request_id"],
        hb["symbol"],
        hb["timeframe"],
        hb["client"],
        str(hb["account"]),
        str(hb["magic"]),
        str(hb["utc_offset_s"]),
        "5",
        "2",
        stdin=positions,
    )
    assert json.loads(text) == hb
    assert list(json.loads(text)) == list(hb)
    protocol.parse_request(text.encode())

    pr = _fixture("predict.json")["request"]
    rows = "\n".join(" ".join(repr(v) for v in c) for c in pr["candles"])
    text = _run(
        driver,
        "build_predict",
        pr["request_id"],
        pr["symbol"],
        pr["timeframe"],
        str(pr["spread_points"]),
        str(pr["utc_offset_s"]),
        "5",
        stdin=rows,
    )
    assert json.loads(text) == pr, "predict built by the EA differs from the golden fixture"
    assert list(json.loads(text)) == list(pr)
    req = protocol.parse_request(text.encode())
    assert isinstance(req, protocol.PredictRequest) and len(req.candles) == len(pr["candles"])

    for name in ("trade_event_filled.json", "trade_event_rejected.json", "trade_event_closed.json"):
        te = _fixture(name)["request"]
        stdin = "\n".join(
            f"{k}\t{v}"
            for k, v in te.items()
            if k not in ("protocol_version", "type", "request_id")
        )
        text = _run(driver, "build_trade_event", te["request_id"], "5", "2", stdin=stdin + "\n")
        assert json.loads(text) == te, name
        assert list(json.loads(text)) == list(te), name
        protocol.parse_request(text.encode())


@pytest.mark.slow  # compiles the includes (g++)
def test_compiled_readers_return_the_fixture_values(driver: Path) -> None:
    hb = _fixture("heartbeat.json")["reply"]
    got = _kv(_run(driver, "read_reply", stdin=json.dumps(hb)))
    assert got["envelope_ok"] == "1" and got["ok"] == "1" and got["usable"] == "1"
    assert got["model.version"] == hb["model"]["version"]
    assert got["model.name"] == hb["model"]["name"]
    assert int(got["min_bars"]) == hb["min_bars"]
    assert float(got["point"]) == hb["point"]
    for key, value in hb["risk"].items():
        if isinstance(value, str):
            assert got[f"risk.{key}"] == value, key
        else:
            assert float(got[f"risk.{key}"]) == value, key
    assert got["has_exit_policy"] == "1" and got["has_instrument"] == "1"
    for key, value in hb["instrument"].items():
        assert float(got[f"instrument.{key}"]) == value, key
    assert (got["has_utc_offset"], int(got["utc_offset_s"])) == ("1", hb["utc_offset_s"])
    assert got["clock_check"] == hb["clock_check"] and got["has_reconcile"] == "1"
    for key, value in hb["reconcile"].items():
        assert int(got[f"reconcile.{key}"]) == value, key

    pr = _fixture("predict.json")["reply"]
    got = _kv(_run(driver, "read_reply", stdin=json.dumps(pr)))
    assert got["usable"] == "1" and got["action"] == pr["action"]
    for key in ("confidence", "sl", "tp", "sl_points", "tp_points"):
        assert float(got[key]) == pr[key], key
    assert int(got["bar_time"]) == pr["bar_time"] and got["model_version"] == pr["model_version"]

    hold = dict(pr, action="HOLD", sl=None, tp=None, sl_points=None, tp_points=None)
    got = _kv(_run(driver, "read_reply", stdin=json.dumps(hold)))
    assert got["action"] == "HOLD" and float(got["sl_points"]) == 0.0

    for path in sorted(FIXTURES.glob("error_*.json")):
        reply = json.loads(path.read_text())["reply"]
        got = _kv(_run(driver, "read_reply", stdin=json.dumps(reply)))
        assert got["ok"] == "0" and got["code"] == reply["code"], path.name
        assert got["request_id"] == (reply["request_id"] or ""), path.name

    ack = _fixture("trade_event_filled.json")["reply"]
    got = _kv(_run(driver, "read_reply", stdin=json.dumps(ack)))
    assert got["event_id"] == str(ack["event_id"])


# Contract specs of a USD account (typical retail values): tick size, tick value rule,
# fixed tick value, min/max/step; the price for price-dependent tick values.
_SPECS = {
    "EURUSD": dict(ts=0.00001, mode=0, fixed=1.0, price=1.0850, q=1.0, lots=(0.01, 100.0, 0.01)),
    "USDJPY": dict(ts=0.001, mode=1, fixed=100.0, price=151.37, q=1.0, lots=(0.01, 50.0, 0.01)),
    "GBPJPY": dict(
        ts=0.001, mode=2, fixed=100.0, price=192.44, q=1 / 151.37, lots=(0.01, 50.0, 0.01)
    ),
    "XAUUSD": dict(ts=0.01, mode=0, fixed=1.0, price=2650.15, q=1.0, lots=(0.01, 20.0, 0.01)),
    "STEP01": dict(ts=0.00001, mode=0, fixed=1.0, price=1.1, q=1.0, lots=(0.1, 5.0, 0.1)),
}


def _lot_cases() -> list[tuple[float, ...]]:
    cases = []
    for spec in _SPECS.values():
        tv = instruments.tick_value_from(spec["fixed"], spec["mode"], spec["price"], spec["q"])
        lmin, lmax, lstep = spec["lots"]
        for equity in (100.0, 1_000.0, 10_000.0, 250_000.0, 10_000_000.0):
            for risk_pct in (0.1, 0.5, 1.0, 2.0):
                for sl_ticks in (7, 150, 333, 1_000, 25_000):
                    for use_min in (0, 1):
                        cases.append(
                            (
                                equity,
                                risk_pct,
                                sl_ticks * spec["ts"],
                                spec["ts"],
                                tv,
                                lmin,
                                lmax,
                                lstep,
                                use_min,
                            )
                        )
    cases += [
        (0.0, 1.0, 0.001, 1e-5, 1.0, 0.01, 100, 0.01, 0),
        (1e4, 1.0, 0.0, 1e-5, 1.0, 0.01, 100, 0.01, 0),
        (1e4, 1.0, 0.001, 1e-5, 0.0, 0.01, 100, 0.01, 0),
        (1e4, 1.0, 0.001, 1e-5, 1.0, 0.01, 100, 0.0, 1),
        (3e3, 1.0, 0.0010, 1e-5, 1.0, 0.01, 100, 0.01, 0),
    ]  # 0.3 lots: the 29.999.. case
    return cases


@pytest.mark.slow  # compiles the includes (g++)
def test_compiled_lot_sizing_equals_python(driver: Path) -> None:
    cases = _lot_cases()
    stdin = "".join(
        "lots " + " ".join(repr(float(x)) for x in c[:8]) + f" {int(c[8])}\n" for c in cases
    )
    out = _run(driver, "rules", stdin=stdin).splitlines()
    assert len(out) == len(cases)
    codes = set()
    for case, line in zip(cases, out, strict=True):
        lots, code = line.split()
        py_lots, py_code = risk.lots_for_risk_raw(*case[:8], bool(case[8]))
        assert (float(lots), int(code)) == (py_lots, py_code), case
        codes.add(py_code)
    assert codes == {
        risk.LOT_OK,
        risk.LOT_CLAMPED_MAX,
        risk.LOT_BELOW_MIN,
        risk.LOT_RAISED_TO_MIN,
        risk.LOT_INVALID_INPUT,
    }, "the table must reach every outcome"


@pytest.mark.slow  # compiles the includes (g++)
def test_compiled_rules_equal_python(driver: Path) -> None:
    cases: list[tuple[str, tuple[Any, ...], Any]] = []
    for spec in _SPECS.values():
        args = (spec["fixed"], spec["mode"], spec["price"], spec["q"])
        cases.append(("tick_value", args, instruments.tick_value_from(*args)))
    for a, b in [(10, 30), (30, 30), (31, 30), (50, 0), (50, -1)]:
        cases.append(("spread", (float(a), float(b)), risk.spread_ok(a, b)))
    for args in [
        (10_000.0, 9_700.0, 3.0),
        (10_000.0, 9_700.01, 3.0),
        (10_000.0, 5_000.0, 0.0),
        (0.0, 100.0, 3.0),
        (10_000.0, 11_000.0, 3.0),
    ]:
        cases.append(("dd", args, risk.daily_drawdown_breached(*args)))
    for args in [
        (0, 0.0, 0.5, 1, 5.0),
        (1, 0.5, 0.5, 1, 5.0),
        (1, 4.5, 0.5, 2, 5.0),
        (1, 4.6, 0.5, 2, 5.0),
        (0, 0.0, 0.1, 0, 5.0),
    ]:
        cases.append(("exposure", args, risk.exposure_ok(*args)))
    for args in [
        (0.5, 0.0, 5.0, 0.01, 0.01, True),
        (3.0, 4.5, 5.0, 0.01, 0.01, True),  # 0.5 lots of room
        (3.0, 4.7, 5.0, 0.01, 0.01, True),  # 0.3: the 29.999.. case
        (3.0, 4.7, 5.0, 0.01, 0.01, False),
        (3.0, 4.995, 5.0, 0.01, 0.01, True),  # room below the minimum: unchanged, vetoed
        (3.0, 5.0, 5.0, 0.01, 0.01, True),
        (2.0, 1.0, 2.55, 0.1, 0.1, True),
        (0.0, 1.0, 5.0, 0.01, 0.01, True),
    ]:
        cases.append(("shrink", args, risk.shrink_to_exposure(*args)))
    windows = ((0, 24), (8, 20), (22, 6), (7, 7))
    for args in [(h, s, e) for h in (0, 5, 6, 13, 21, 22, 23) for s, e in windows]:
        cases.append(("hours", args, risk.trading_hour_ok(*args)))
    for args in [
        (0.0010, 0.0020, 0.00012, 0.0005),
        (0.0003, 0.0002, 0.00012, 0.0005),
        (0.0010, 0.0, 0.0002, 0.0030),
        (0.5, 0.2, 0.3, 0.1),
    ]:
        cases.append(("widen", args, risk.widen_to_stop_level(*args)))
    for args in [(1.123456789, 5), (151.3749999, 3), (2650.155, 2)]:
        cases.append(("normalize", args, risk.normalize_price(*args)))
    for args in [
        (d, sig, held, opp, hold)
        for d in (1, -1)
        for sig in (1, 0, -1)
        for held in (0, 23, 24)
        for opp in (True, False)
        for hold in (0, 24)
    ]:
        cases.append(("exit", args, risk.exit_reason(*args)))
    stdin = (
        "\n".join(
            f"{n} " + " ".join(str(int(a)) if isinstance(a, bool) else repr(a) for a in args)
            for n, args, _ in cases
        )
        + "\n"
    )
    out = _run(driver, "rules", stdin=stdin).splitlines()
    assert len(out) == len(cases)
    for (name, args, expected), line in zip(cases, out, strict=True):
        if name in ("spread", "dd", "exposure", "hours"):
            assert line == str(int(expected)), (name, args)
        elif name == "widen":
            assert tuple(float(x) for x in line.split()) == expected, (name, args)
        elif name == "normalize":
            assert float(line) == pytest.approx(expected, abs=1e-12), (name, args)
        elif name == "exit":
            assert int(line) == expected, (name, args)
        else:
            assert float(line) == expected, (name, args)
    reasons = _run(driver, "rules", stdin="".join(f"lot_reason {c}\n" for c in risk.LOT_REASONS))
    assert reasons.split() == list(risk.LOT_REASONS.values())
    reasons = _run(
        driver, "rules", stdin="".join(f"entry_reason {c}\n" for c in risk.ENTRY_REASONS)
    )
    assert reasons.split() == list(risk.ENTRY_REASONS.values())


@pytest.mark.slow  # compiles the includes (g++)
def test_compiled_entry_veto_equals_python(driver: Path) -> None:
    cases = [
        (spread, 30.0, halted, hour, start, end, lots, n_open, open_lots, 1, 5.0)
        for spread in (12.0, 31.0)
        for halted in (False, True)
        for hour in (3, 12)
        for start, end in ((0, 24), (8, 20))
        for lots in (0.0, 0.5)
        for n_open, open_lots in ((0, 0.0), (1, 0.5))
    ]
    stdin = "".join(
        "veto " + " ".join(str(int(a)) if isinstance(a, bool) else repr(a) for a in c) + "\n"
        for c in cases
    )
    out = [int(x) for x in _run(driver, "rules", stdin=stdin).split()]
    expected = [risk.entry_veto(*c) for c in cases]
    assert out == expected
    assert set(expected) == set(risk.ENTRY_REASONS), "the table must reach every veto"


@pytest.mark.slow  # compiles the includes (g++)
def test_compiled_trade_helpers(driver: Path) -> None:
    codes = list(range(0, 160))
    out = _run(driver, "rules", stdin="".join(f"retryable {c}\n" for c in codes)).split()
    retried = {c for c, r in zip(codes, out, strict=True) if r == "1"}
    assert retried == {129, 135, 136, 138, 146}  # a fresh quote can fix these
    steps = {0.01: 2, 0.1: 1, 1.0: 0, 0.001: 3, 0.05: 2}
    out = _run(driver, "rules", stdin="".join(f"lot_digits {s}\n" for s in steps)).split()
    assert [int(x) for x in out] == list(steps.values())
    out = _run(
        driver, "rules", stdin="stops 0 1.10000 0.00150 0.00300 5\nstops 1 1.10000 0.00150 0.0 5\n"
    ).splitlines()
    assert [float(x) for x in out[0].split()] == [1.0985, 1.103]
    assert [float(x) for x in out[1].split()] == [1.1015, 0.0]
    tfs = _run(
        driver, "rules", stdin="".join(f"timeframe {m}\n" for m in (1, 60, 43200, 2))
    ).split()
    assert tfs == ["M1", "H1", "MN1", "-"]


@pytest.mark.slow  # compiles the includes (g++)
def test_compiled_csv_field_matches_python_csv(driver: Path) -> None:
    fields = [
        "plain",
        "a,b",
        'say "hi"',
        '{"status":"ok","x":[1,2]}',
        "line1\nline2",
        "cr\rhere",
        "",
        "→ v4",
    ]
    stdin = "".join(f.replace("\n", "\x01").replace("\r", "\x02") + "\n" for f in fields)
    out = _run(driver, "csv", stdin=stdin).split("\n")[:-1]
    got = [line.replace("\x01", "\n").replace("\x02", "\r") for line in out]
    for field, mine in zip(fields, got, strict=True):
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\r\n").writerow(["x", field])  # as a journal column
        assert "x," + mine + "\r\n" == buf.getvalue(), field
    n, text = _run(driver, "utf8", stdin='{"a":"b"}').split("\t", 1)
    assert (int(n), text) == (9, '{"a":"b"}')


# --------------------------------------------------------------------------- journal, live


def test_readme_documents_every_journal_event() -> None:
    ea = EA_FILE.read_text(encoding="utf-8")
    events = set(re.findall(r'\bLog\("([a-z_]+)"', ea))
    kinds = set(re.findall(r'\bExchange\("([a-z_]+)"', ea))
    suffixes = set(re.findall(r'\bLog\(kind\+"(_[a-z_]+)"', ea))
    events |= {k + s for k in kinds for s in suffixes}
    assert len(events) >= 30, events
    section = README.read_text(encoding="utf-8").split("Events:", 1)[1].split("\n\n", 1)[0]
    documented = set(re.findall(r"`([a-z_]+)`", section))
    assert events <= documented, f"journal events missing from README: {events - documented}"


def _exchange(endpoint: str, requests: list[str]) -> list[str]:
    """Plain pyzmq REQ round trips (the EA's transport is tested in test_ea_transport.py)."""
    from tests.server_fixtures import ReqClient

    with ReqClient(endpoint, timeout_ms=10_000) as client:
        return [client.raw(r.encode()).decode() for r in requests]


def test_compiled_ea_pieces_against_the_real_server(
    driver: Path, trained_model_store: Any, tmp_path: Path
) -> None:
    """EA builders -> real SignalServer + registered model -> EA readers."""
    from aibridge.ea_sim import load_candles
    from aibridge.paths import sample_data_path
    from tests.server_fixtures import real_models, running_server

    models = real_models(
        trained_model_store.tracking_uri, [trained_model_store.model_uri], tmp_path / "cache"
    )
    with running_server(tmp_path, models) as (_server, endpoint):
        hb = _run(
            driver,
            "build_heartbeat",
            "hb-1",
            "EURUSD",
            "H1",
            "AIBridge_EA test",
            "12345",
            "20261125",
            "0",
            "5",
            "2",
        )
        [reply] = _exchange(endpoint, [hb])
        got = _kv(_run(driver, "read_reply", stdin=reply))
        assert got["ok"] == "1" and got["usable"] == "1" and got["request_id"] == "hb-1"
        min_bars = int(got["min_bars"])
        assert got["model.name"] == "aibridge-EURUSD-H1" and min_bars > 0

        c = load_candles(sample_data_path())
        end = min_bars + 50  # index of the last closed bar sent
        rows = "\n".join(
            f"{int(c.time[i])} {float(c.open[i])!r} {float(c.high[i])!r} {float(c.low[i])!r} "
            f"{float(c.close[i])!r} {int(c.volume[i])}"
            for i in range(end - min_bars + 1, end + 1)
        )
        rid = f"EURUSD-H1-{int(c.time[end])}"
        req = _run(driver, "build_predict", rid, "EURUSD", "H1", "12", "0", "5", stdin=rows)
        too_few = _run(
            driver,
            "build_predict",
            "p-few",
            "EURUSD",
            "H1",
            "12",
            "0",
            "5",
            stdin="\n".join(rows.splitlines()[-5:]),
        )
        te = _run(
            driver,
            "build_trade_event",
            "te-1",
            "5",
            "2",
            stdin="event\tfilled\nsymbol\tEURUSD\ntimeframe\tH1\nticket\t42\nside\tBUY\n"
            "price\t1.1\nlots\t0.1\nsl\t1.09\ntp\t1.12\nmagic\t20261125\ntime\t1\n"
            "model_version\t1\naccount\t12345\nseq\t1\n",
        )
        replies = _exchange(endpoint, [req, too_few, te])
    got = _kv(_run(driver, "read_reply", stdin=replies[0]))
    assert got["ok"] == "1" and got["usable"] == "1" and got["request_id"] == rid, replies[0]
    assert got["action"] in ("BUY", "SELL", "HOLD")
    assert int(got["bar_time"]) == int(c.time[end])
    err = _kv(_run(driver, "read_reply", stdin=replies[1]))
    assert (err["ok"], err["code"], err["request_id"]) == ("0", "too_few_bars", "p-few")
    ack = _kv(_run(driver, "read_reply", stdin=replies[2]))
    assert ack["ok"] == "1" and int(ack["event_id"]) > 0
