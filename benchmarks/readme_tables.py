"""The README's benchmark tables, generated from the benchmarks' JSON (never typed by hand).

Run: ``.venv/bin/python benchmarks/readme_tables.py`` prints every table whose JSON exists;
``--write README.md`` replaces the text between ``<!-- bench:NAME -->`` and
``<!-- /bench:NAME -->`` in the README with the table NAME
(server, trees, ingest, pipeline, backtest, training) and leaves everything else alone;
``--check README.md`` exits 1 when a marked table is stale.

Each benchmark script renders its own table (``markdown(result)``); this script only loads the
JSON and calls it, so the README shows exactly what the run printed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
TABLES = {
    "server": ("bench_server.py", "server.json"),
    "trees": ("bench_trees.py", "trees.json"),
    "ingest": ("bench_ingest.py", "ingest.json"),
    "pipeline": ("bench_pipeline.py", "pipeline.json"),
    "backtest": ("bench_backtest.py", "backtest.json"),
    "training": ("bench_training.py", "training.json"),
}


def _module(script: str):
    spec = importlib.util.spec_from_file_location(f"_bench_{Path(script).stem}", HERE / script)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def tables(results: Path = RESULTS) -> dict[str, str]:
    out = {}
    for name, (script, file) in TABLES.items():
        path = results / file
        if not path.is_file():
            continue
        data = json.loads(path.read_text())
        try:
            out[name] = _module(script).markdown(data).strip()
        except (KeyError, TypeError) as exc:  # a JSON from before the table's current form
            out[name] = (
                f"_{file} predates this table ({type(exc).__name__}: {exc}); rerun {script}_"
            )
    return out


def fill(text: str, rendered: dict[str, str]) -> str:
    for name, table in rendered.items():
        # Empty markers (a table not rendered yet) match too: nothing between them is required.
        pattern = re.compile(rf"(<!-- bench:{name} -->\n)(?:.*?\n)?(<!-- /bench:{name} -->)", re.S)
        text = pattern.sub(lambda m, t=table: m.group(1) + t + "\n" + m.group(2), text)
    return text


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--write", type=Path, help="README to update between the markers")
    p.add_argument("--check", type=Path, help="README to compare; exit 1 when stale")
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args()
    rendered = tables(args.results)
    if args.write or args.check:
        target = args.write or args.check
        text = target.read_text()
        new = fill(text, rendered)
        if args.check:
            stale = new != text
            print("README benchmark tables are stale" if stale else "README tables up to date")
            return int(stale)
        target.write_text(new)
        marked = [n for n in rendered if f"<!-- bench:{n} -->" in text]
        print(f"updated {target}: {', '.join(marked) or 'no marked tables'}")
        return 0
    for name, table in rendered.items():
        print(f"<!-- bench:{name} -->\n{table}\n<!-- /bench:{name} -->\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
