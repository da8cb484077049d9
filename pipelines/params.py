"""DVC stage `params` (logic in aibridge.stages.params)."""

from aibridge.stages.params import main

if __name__ == "__main__":
    main()
