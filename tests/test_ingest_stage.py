"""The ingest stage as a user meets it: one clear line for a wrong file, never a traceback."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO, run


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for item in ("conf", "dvc.yaml", "params.yaml", "pipelines"):
        src = REPO / item
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, tmp_path / item)
    (tmp_path / "data").mkdir()
    return tmp_path


def ingest(project: Path):
    return run([sys.executable, "pipelines/ingest.py"], project, check=False)


def test_good_file_writes_parquet_and_report(project: Path) -> None:
    shutil.copy2(REPO / "src/aibridge/data/EURUSD60.csv", project / "data" / "EURUSD60.csv")
    result = ingest(project)
    assert result.returncode == 0, result.stderr
    candles = pd.read_parquet(project / "artifacts/candles/EURUSD_H1.parquet")
    assert list(candles.columns) == ["time", "open", "high", "low", "close", "volume"]
    assert len(candles) == 5000


def test_broken_row_fails_with_file_and_line(project: Path) -> None:
    (project / "data" / "EURUSD60.csv").write_text(
        "2023.01.02,00:00,1.07016,1.07060,1.06990,1.07020,1234\n2023.01.02,01:00,1.07,oops,1.06,1.07,3\n"
    )
    result = ingest(project)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "ingest failed:" in result.stderr and "line 2: [unparsable]" in result.stderr


def test_timeframe_mismatch(project: Path) -> None:
    lines = [f"2023.01.02,{h:02d}:00,1.07,1.071,1.069,1.0705,5" for h in range(6)]
    (project / "data" / "EURUSD240.csv").write_text("\n".join(lines) + "\n")
    result = ingest(project)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "bars are typically 60 minutes apart, but the timeframe is H4" in result.stderr


def test_unnamed_file_and_empty_dir(project: Path) -> None:
    result = ingest(project)
    assert result.returncode == 1 and "no files matching '*.csv'" in result.stderr
    (project / "data" / "candles.csv").write_text("2023.01.02,00:00,1.07,1.071,1.069,1.0705,5\n")
    result = ingest(project)
    assert "cannot tell symbol and timeframe from the file name" in result.stderr
    assert "Traceback" not in result.stderr
