"""DVC stage `train` (logic in aibridge.stages.train)."""

from aibridge.stages.train import main

if __name__ == "__main__":
    main()
