#!/usr/bin/env python3
"""Markdown tables from `diffsem eval` JSON lines, from a checkout: the command line of
diffsem_apps.results_table (`python scripts/results_table.py --help`)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from diffsem_apps.results_table import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
