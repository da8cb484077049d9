"""The registry-version series the 'served version is not the champion' alert compares against."""

from __future__ import annotations

from aibridge.server.metrics import ServerMetrics


def series(m: ServerMetrics) -> list[str]:
    return [
        line
        for line in m.render().decode().splitlines()
        if line.startswith("aibridge_registry_model_info{")
    ]


def test_registry_version_keeps_one_series_per_alias() -> None:
    m = ServerMetrics()
    m.set_registry_version("aibridge-EURUSD-H1", "champion", "3")
    m.set_registry_version("aibridge-EURUSD-H1", "champion", "4")
    m.set_registry_version("aibridge-USDJPY-H1", "champion", "1")
    lines = series(m)
    assert len(lines) == 2
    assert any('name="aibridge-EURUSD-H1"' in x and 'version="4"' in x for x in lines)
    assert not any('version="3"' in x for x in lines)
