"""Broker contract specifications and the money value of a price move.

One job: turn ``conf/instrument/<SYMBOL>.yaml`` into a validated :class:`InstrumentSpec` and
answer "what is one tick worth, per lot, in the account currency, at this price?" — the
question every lot-size and P&L computation asks. The backtest, the EA emulator and the
MQL4 EA (``MarketInfo(MODE_TICKVALUE)``) must agree on it, so the rule lives here once.

Tick value rule for an account in currency ``A`` and a pair ``BASE/QUOTE``:

* ``QUOTE == A`` (EURUSD, XAUUSD on a USD account): fixed, ``contract_size * tick_size``.
* ``BASE == A`` (USDJPY on a USD account): the profit is in JPY, converted at the pair's own
  price: ``contract_size * tick_size / price`` — it changes with every quote.
* otherwise (a cross such as GBPJPY): ``contract_size * tick_size * quote_to_account`` where
  ``quote_to_account`` is the price of one unit of QUOTE in A (for JPY→USD: ``1 / USDJPY``).

The same rule is exposed as :func:`tick_value_from` on plain floats and integer mode codes
so that the numba backtest core compiles *this* function instead of re-implementing it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from aibridge.paths import conf_dir

# Integer codes for the tick value rule: usable inside numba-compiled code and in MQL4.
TICK_VALUE_FIXED = 0  # quote currency == account currency, or a broker-given fixed value
TICK_VALUE_BASE_IS_ACCOUNT = 1  # base currency == account currency: divide by price
TICK_VALUE_CROSS = 2  # neither: multiply by the quote→account conversion rate


class InstrumentSpec(BaseModel):
    """A broker's contract specification for one symbol, as MT4's ``MarketInfo`` reports it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: str
    digits: int = Field(ge=0, le=8)
    point: float = Field(gt=0)
    tick_size: float | None = Field(default=None, gt=0, description="defaults to point")
    base_currency: str = "EUR"
    quote_currency: str = "USD"
    account_currency: str = "USD"
    contract_size: float = Field(default=100_000.0, gt=0)
    tick_value: float | None = Field(
        default=None, gt=0, description="broker-fixed tick value per lot; overrides the rule"
    )
    conversion_symbol: str | None = Field(
        default=None, description="symbol whose price converts QUOTE to the account currency"
    )
    conversion_invert: bool = Field(
        default=False, description="True when quote_to_account = 1 / conversion_symbol price"
    )
    lot_min: float = Field(default=0.01, gt=0)
    lot_max: float = Field(default=100.0, gt=0)
    lot_step: float = Field(default=0.01, gt=0)
    stop_level_points: int = Field(default=0, ge=0)
    default_spread_points: float = Field(default=10.0, ge=0)
    commission_per_lot_per_side: float = Field(default=0.0, ge=0)
    swap_long_points: float = 0.0
    swap_short_points: float = 0.0
    triple_swap_weekday: int = Field(default=2, ge=0, le=6, description="0=Mon; 2=Wed")

    @model_validator(mode="after")
    def _check_limits(self) -> InstrumentSpec:
        if self.lot_min > self.lot_max:
            raise ValueError(f"{self.symbol}: lot_min {self.lot_min} > lot_max {self.lot_max}")
        return self

    @property
    def tick(self) -> float:
        """Minimal price change; MT4's MODE_TICKSIZE (equals point for FX)."""
        return self.tick_size if self.tick_size is not None else self.point

    @property
    def tick_value_mode(self) -> int:
        """Which tick value rule applies (see the module docstring)."""
        if self.tick_value is not None or self.quote_currency == self.account_currency:
            return TICK_VALUE_FIXED
        if self.base_currency == self.account_currency:
            return TICK_VALUE_BASE_IS_ACCOUNT
        return TICK_VALUE_CROSS

    @property
    def fixed_tick_value(self) -> float:
        """Tick value when it does not depend on price (also the per-unit base of the rule)."""
        if self.tick_value is not None:
            return self.tick_value
        return self.contract_size * self.tick

    def tick_value_at(self, price: float, quote_to_account: float | None = None) -> float:
        """Tick value per 1.0 lot in the account currency at ``price``.

        ``quote_to_account`` is required for crosses (e.g. GBPJPY on a USD account needs the
        JPY→USD rate ``1 / USDJPY``); it is ignored otherwise.

        >>> InstrumentSpec(symbol="EURUSD", digits=5, point=1e-5).tick_value_at(1.1)
        1.0
        >>> usdjpy = InstrumentSpec(
        ...     symbol="USDJPY", digits=3, point=0.001, base_currency="USD", quote_currency="JPY"
        ... )
        >>> round(usdjpy.tick_value_at(125.0), 6)  # 100,000 x 0.001 JPY at 125 JPY per USD
        0.8
        """
        mode = self.tick_value_mode
        if mode == TICK_VALUE_CROSS and (quote_to_account is None or quote_to_account <= 0):
            raise ValueError(
                f"{self.symbol}: a cross needs quote_to_account "
                f"({self.quote_currency}->{self.account_currency}, from {self.conversion_symbol})"
            )
        return tick_value_from(
            self.contract_size * self.tick if self.tick_value is None else self.tick_value,
            mode,
            price,
            1.0 if quote_to_account is None else quote_to_account,
        )

    def quote_to_account_from(self, conversion_price: float) -> float:
        """Turn the conversion symbol's price into the QUOTE→account rate."""
        return 1.0 / conversion_price if self.conversion_invert else conversion_price

    def points_to_price(self, points: float) -> float:
        """Convert a distance in points (MT4 spread/stop level unit) to a price distance."""
        return points * self.point


def tick_value_from(
    fixed_tick_value: float, mode: int, price: float, quote_to_account: float
) -> float:
    """Tick value per lot on plain floats — numba-compilable, mirrored by the MQL4 EA.

    ``fixed_tick_value`` is ``contract_size * tick_size`` (or the broker's fixed value).

    >>> tick_value_from(1.0, TICK_VALUE_BASE_IS_ACCOUNT, 125.0, 1.0)
    0.008
    >>> tick_value_from(1000.0, TICK_VALUE_CROSS, 190.0, 1 / 125)  # GBPJPY on a USD account
    8.0
    """
    if mode == TICK_VALUE_BASE_IS_ACCOUNT:
        return fixed_tick_value / price
    if mode == TICK_VALUE_CROSS:
        return fixed_tick_value * quote_to_account
    return fixed_tick_value


def instrument_conf_dir() -> Path:
    """``conf/instrument`` of the workspace being run (see :func:`aibridge.paths.conf_dir`)."""
    return conf_dir() / "instrument"


def spec_from_mapping(data: Mapping[str, Any]) -> InstrumentSpec:
    """Validate a mapping (a YAML dict or a Hydra ``cfg.instrument`` node) into a spec."""
    return InstrumentSpec.model_validate(dict(data))


def load_instrument(symbol: str, directory: Path | None = None) -> InstrumentSpec:
    """Load ``<directory>/<SYMBOL>.yaml`` (default ``conf/instrument``); one clear error if
    the file is missing."""
    path = (directory or instrument_conf_dir()) / f"{symbol.upper()}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise FileNotFoundError(f"no instrument spec {path}; known symbols: {known}")
    with path.open(encoding="utf-8") as fh:
        return spec_from_mapping(yaml.safe_load(fh))
