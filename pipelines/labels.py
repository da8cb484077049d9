"""DVC stage `labels` (logic in aibridge.stages.labels)."""

from aibridge.stages.labels import main

if __name__ == "__main__":
    main()
