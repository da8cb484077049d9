"""DVC stage `backtest` (logic in aibridge.stages.backtest)."""

from aibridge.stages.backtest import main

if __name__ == "__main__":
    main()
