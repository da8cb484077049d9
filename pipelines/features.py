"""DVC stage `features` (logic in aibridge.stages.features)."""

from aibridge.stages.features import main

if __name__ == "__main__":
    main()
