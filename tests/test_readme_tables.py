"""The README's benchmark tables are the benchmarks' JSON rendered, not figures typed by hand."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_benchmark_tables_match_results_json():
    proc = subprocess.run(
        [sys.executable, "benchmarks/readme_tables.py", "--check", "README.md"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, (
        f"{proc.stdout}{proc.stderr}"
        "run: .venv/bin/python benchmarks/readme_tables.py --write README.md"
    )


def test_every_rendered_table_has_markers_in_the_readme():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import readme_tables
    finally:
        sys.path.pop(0)
    text = (ROOT / "README.md").read_text()
    missing = [n for n in readme_tables.tables() if f"<!-- bench:{n} -->" not in text]
    assert missing == []
