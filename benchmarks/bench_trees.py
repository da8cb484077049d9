"""Tree evaluators side by side (issue 12): one feature row -> class probabilities.

Run: ``.venv/bin/python benchmarks/bench_trees.py [--booster path/to/booster.txt]``
Writes ``benchmarks/results/trees.json`` and prints a table: microseconds per row (median of
repeated single-row calls), the largest difference to ``lightgbm.Booster.predict`` over
every row of the sample's feature matrix, and what importing the evaluator costs in
resident memory (measured in a fresh interpreter).

Evaluators:

* ``lightgbm``  -- the package's ``Booster.predict(row, num_threads=1)`` (the shipped path);
* ``ctypes``    -- LightGBM's own C library through ``aibridge.serving.lgbm.NativeBooster``
  (``LGBM_BoosterPredictForMatSingleRowFast``): the lean runtime's choice;
* ``numpy``     -- the trees from ``booster.dump_model()`` walked level by level for all trees
  at once with numpy (LightGBM's numerical decision with its missing-value rules, per-class
  sums in iteration order, softmax);
* ``lleaves`` / ``tl2cgen`` -- compiled models, measured when installed in the interpreter
  given by ``--compiled-python`` (they need LLVM or a C compiler at load time).

Models: the booster given (e.g. a registered model's ``artifacts/booster.txt``) and a larger
one trained here on the sample (``--rounds`` x 3 classes, 31 leaves), as trees grow with data.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "trees.json"
K_ZERO = 1e-35


class NumpyForest:
    """All trees of a multiclass booster as flat arrays, walked depth-synchronously."""

    def __init__(self, model: dict) -> None:
        self.k = int(model["num_class"])
        trees = model["tree_info"]
        feats, thr, left, right, dleft, miss, value = [], [], [], [], [], [], []
        roots = []
        for tree in trees:
            base = len(feats)
            roots.append(base)
            stack = [tree["tree_structure"]]
            order = []
            while stack:  # assign ids in DFS order
                node = stack.pop()
                order.append(node)
                for side in ("right_child", "left_child"):
                    if side in node:
                        stack.append(node[side])
            ids = {id(n): base + i for i, n in enumerate(order)}
            for node in order:
                if "split_feature" in node:
                    if node.get("decision_type", "<=") != "<=":
                        raise ValueError("categorical splits are not supported here")
                    feats.append(node["split_feature"])
                    thr.append(float(node["threshold"]))
                    left.append(ids[id(node["left_child"])])
                    right.append(ids[id(node["right_child"])])
                    dleft.append(bool(node["default_left"]))
                    miss.append({"None": 0, "Zero": 1, "NaN": 2}[node["missing_type"]])
                    value.append(0.0)
                else:  # leaf: points to itself
                    i = len(feats)
                    feats.append(0)
                    thr.append(0.0)
                    left.append(i)
                    right.append(i)
                    dleft.append(True)
                    miss.append(0)
                    value.append(float(node.get("leaf_value", 0.0)))
        self.feat = np.array(feats, dtype=np.int64)
        self.thr = np.array(thr)
        self.left = np.array(left, dtype=np.int64)
        self.right = np.array(right, dtype=np.int64)
        self.dleft = np.array(dleft)
        self.miss = np.array(miss, dtype=np.int8)
        self.value = np.array(value)
        self.is_leaf = self.left == np.arange(len(feats))
        self.roots = np.array(roots, dtype=np.int64)
        self.depth = max(_depth(t["tree_structure"]) for t in trees)

    def predict_row(self, x: np.ndarray) -> np.ndarray:
        node = self.roots.copy()
        for _ in range(self.depth):
            f = x[self.feat[node]]
            m = self.miss[node]
            nan = np.isnan(f)
            f = np.where(nan & (m != 2), 0.0, f)
            zero = (f > -K_ZERO) & (f <= K_ZERO)
            default = ((m == 1) & zero) | ((m == 2) & np.isnan(f))
            go_left = np.where(default, self.dleft[node], f <= self.thr[node])
            node = np.where(go_left, self.left[node], self.right[node])
        leaf = self.value[node].reshape(-1, self.k)
        raw = np.cumsum(leaf, axis=0)[-1]  # in iteration order, as LightGBM adds trees
        e = np.exp(raw - raw.max())
        return e / e.sum()


def _depth(node: dict) -> int:
    if "split_feature" not in node:
        return 0
    return 1 + max(_depth(node["left_child"]), _depth(node["right_child"]))


def sample_matrix() -> np.ndarray:
    from aibridge import features
    from aibridge.ingest import read_mt4_csv
    from aibridge.paths import sample_data_path

    candles = read_mt4_csv(sample_data_path()).candles
    return np.ascontiguousarray(features.compute_features(candles).dropna().to_numpy())


def train_large(X: np.ndarray, rounds: int, path: Path) -> None:
    import lightgbm as lgb

    y = (np.sign(np.diff(X[:, 9], append=X[-1, 9])) + 1).astype(int)  # any 3-class target
    booster = lgb.train(
        {
            "objective": "multiclass",
            "num_class": 3,
            "num_leaves": 31,
            "verbose": -1,
            "num_threads": 1,
            "min_data_in_leaf": 20,
        },
        lgb.Dataset(X, y),
        num_boost_round=rounds,
    )
    booster.save_model(str(path))


def per_row_us(fn, X: np.ndarray, n: int = 2000) -> float:
    rows = [X[i % len(X)].copy() for i in range(n)]
    for r in rows[:200]:
        fn(r)
    times = np.empty(n)
    for i, r in enumerate(rows):
        t0 = time.perf_counter()
        fn(r)
        times[i] = time.perf_counter() - t0
    return float(np.median(times) * 1e6)


HWM = (
    "def hwm_kb():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM'):\n"
    "            return int(line.split()[1])\n"
)
IMPORT_RSS = {
    "lightgbm": "import lightgbm",
    "ctypes": "from aibridge.serving.lgbm import NativeBooster, _lib; _lib()",
    "numpy": "import numpy",
}


def import_rss_mb(statement: str, python: str = sys.executable) -> float:
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the forking parent.
    code = f"{statement}\n{HWM}\nprint(hwm_kb())"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return round(int(out.stdout.strip().splitlines()[-1]) / 1024, 1)


COMPILED = (
    HWM
    + r"""
import json, sys, time, tempfile
import numpy as np
path, X_path, which = sys.argv[1], sys.argv[2], sys.argv[3]
X = np.load(X_path)
t_load = time.perf_counter()
if which == "lleaves":
    import lleaves
    m = lleaves.Model(model_file=path)
    m.compile()
    pred = lambda r: m.predict(r.reshape(1, -1), n_jobs=1)
else:
    import tl2cgen, treelite
    tm = treelite.frontend.load_lightgbm_model(path)
    lib = tempfile.mkdtemp() + "/model.so"
    tl2cgen.export_lib(tm, toolchain="gcc", libpath=lib, params={"parallel_comp": 8})
    p = tl2cgen.Predictor(lib, nthread=1)
    pred = lambda r: p.predict(tl2cgen.DMatrix(r.reshape(1, -1))).reshape(1, -1)
t_load = time.perf_counter() - t_load
out = np.vstack([pred(r) for r in X]).reshape(len(X), -1)
rows = [X[i % len(X)].copy() for i in range(2000)]
ts = []
for r in rows:
    t0 = time.perf_counter(); pred(r); ts.append(time.perf_counter() - t0)
np.save(X_path + ".out.npy", out)
print(json.dumps({"us": float(np.median(ts) * 1e6), "load_s": t_load,
                  "rss_mb": hwm_kb() / 1024}))
"""
)


def bench_model(path: Path, X: np.ndarray, compiled_python: str | None) -> dict:
    import lightgbm as lgb

    from aibridge.serving.lgbm import NativeBooster

    booster = lgb.Booster(model_file=str(path))
    want = booster.predict(X)
    native = NativeBooster(path)
    forest = NumpyForest(booster.dump_model())
    evaluators = {
        "lightgbm": lambda r: booster.predict(r.reshape(1, -1), num_threads=1),
        "ctypes": native.predict_row,
        "numpy": forest.predict_row,
    }
    out: dict = {
        "trees": booster.num_trees(),
        "max_depth": forest.depth,
        "rows_checked": len(X),
    }
    for name, fn in evaluators.items():
        got = np.vstack([np.asarray(fn(r)).reshape(1, -1) for r in X])
        out[name] = {
            "us_per_row": round(per_row_us(fn, X), 2),
            "max_abs_diff": float(np.abs(got - want).max()),
            "bit_identical": bool(got.tobytes() == want.tobytes()),
        }
    if compiled_python:
        with tempfile.TemporaryDirectory() as tmp:
            x_path = str(Path(tmp) / "X.npy")
            np.save(x_path, X)
            for which in ("lleaves", "tl2cgen"):
                done = subprocess.run(
                    [compiled_python, "-c", COMPILED, str(path), x_path, which],
                    capture_output=True,
                    text=True,
                )
                if done.returncode != 0:
                    out[which] = {"error": done.stderr.strip().splitlines()[-1][:200]}
                    continue
                info = json.loads(done.stdout.strip().splitlines()[-1])
                got = np.load(x_path + ".out.npy")
                out[which] = {
                    "us_per_row": round(info["us"], 2),
                    "max_abs_diff": float(np.abs(got - want).max()),
                    "bit_identical": bool(got.tobytes() == want.tobytes()),
                    "compile_s": round(info["load_s"], 1),
                    "rss_after_load_mb": round(info["rss_mb"], 1),
                }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--booster", type=Path, help="a booster.txt (e.g. from a registered model)")
    p.add_argument("--rounds", type=int, default=300)
    p.add_argument("--compiled-python", help="an interpreter with lleaves/tl2cgen installed")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    X = sample_matrix()
    result: dict = {
        "machine": {"cpus": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2)},
        "import_rss_mb": {k: import_rss_mb(v) for k, v in IMPORT_RSS.items()},
        "models": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        large = Path(tmp) / "large.txt"
        train_large(X, args.rounds, large)
        models = {f"trained here ({args.rounds} rounds)": large}
        if args.booster:
            models = {f"given ({args.booster.name})": args.booster, **models}
        for label, path in models.items():
            result["models"][label] = bench_model(path, X, args.compiled_python)
    result["machine"]["loadavg_1m_end"] = round(os.getloadavg()[0], 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    print(f"\nwrote {args.out}")


def markdown(r: dict) -> str:
    lines = [
        f"Import cost (max RSS of a fresh interpreter, MB): {r['import_rss_mb']};"
        f" load {r['machine']['loadavg_1m']}–{r['machine']['loadavg_1m_end']}.",
        "",
        "| model | evaluator | µs / row | max abs diff vs lightgbm | bit-identical |",
        "|---|---|---:|---:|:---:|",
    ]
    for label, m in r["models"].items():
        for name in ("lightgbm", "ctypes", "numpy", "lleaves", "tl2cgen"):
            if name not in m:
                continue
            e = m[name]
            if "error" in e:
                lines.append(f"| {label} | {name} | – | {e['error']} | – |")
                continue
            extra = (
                f" (compile {e['compile_s']} s, process RSS {e['rss_after_load_mb']:.0f} MB)"
                if "compile_s" in e
                else ""
            )
            lines.append(
                f"| {label}, {m['trees']} trees | {name}{extra} | {e['us_per_row']:.1f} |"
                f" {e['max_abs_diff']:.1e} | {'yes' if e['bit_identical'] else 'no'} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
