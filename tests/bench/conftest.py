"""The bench harness is imported as the bench scripts import it: ``bench/`` on the path."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bench"

if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))
