"""``python -m stockflow``: the ``stockflow`` command (for when the script is not on PATH)."""

from stockflow.runtime.cli import main

if __name__ == "__main__":
    main()
