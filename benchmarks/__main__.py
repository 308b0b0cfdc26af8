"""python -m benchmarks: see benchmarks/__init__.py for the rows and flags."""

from __future__ import annotations

import sys

from benchmarks.cli import main

if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        sys.exit(130)
