"""DVC stage `ingest` (logic in aibridge.stages.ingest)."""

from aibridge.stages.ingest import main

if __name__ == "__main__":
    main()
