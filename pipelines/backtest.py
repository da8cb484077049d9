"""DVC stage `backtest` (logic in aibridge.backtest.stage)."""

from aibridge.backtest.stage import main

if __name__ == "__main__":
    main()
