"""DVC stage `register` (logic in aibridge.stages.register)."""

from aibridge.stages.register import main

if __name__ == "__main__":
    main()
