"""DVC stage `evaluate` (logic in aibridge.stages.evaluate)."""

from aibridge.stages.evaluate import main

if __name__ == "__main__":
    main()
