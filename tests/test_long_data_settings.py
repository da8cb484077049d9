"""``conf/model`` can set ``max_bin`` and override or switch off the long-data LightGBM settings
(``training.LONG_DATA``), through the typed settings the stages use."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from aibridge.settings import ModelSettings
from aibridge.training import LONG_DATA, effective_params, lightgbm_params

BASE = {"learning_rate": 0.05, "num_leaves": 7}


def test_unset_means_the_shipped_long_data_settings() -> None:
    params = ModelSettings(**BASE).params()
    assert "long_data" not in params and "max_bin" not in params
    big = effective_params(params, int(LONG_DATA["min_rows"]))
    assert big["max_bin"] == LONG_DATA["max_bin"]
    assert "max_bin" not in effective_params(params, int(LONG_DATA["min_rows"]) - 1)


def test_empty_long_data_turns_it_off_and_max_bin_reaches_lightgbm() -> None:
    params = ModelSettings(**BASE, max_bin=31, long_data={}).params()
    big = effective_params(params, 10_000_000)
    assert big["max_bin"] == 31
    assert lightgbm_params(big, seed=1)["max_bin"] == 31
    assert "long_data" not in lightgbm_params(big, seed=1)


def test_own_long_data_settings_apply_from_their_min_rows() -> None:
    params = ModelSettings(**BASE, long_data={"min_rows": 1_000, "max_bin": 15}).params()
    assert effective_params(params, 1_000)["max_bin"] == 15
    assert "max_bin" not in effective_params(params, 999)


def test_a_misspelt_key_is_refused() -> None:
    with pytest.raises(ValidationError, match="max_bins"):
        ModelSettings(**BASE, max_bins=31)
