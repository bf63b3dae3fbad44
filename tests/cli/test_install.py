"""A plain install gives every main command: the wheel requires Textual and rich."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_requires_the_ui_toolkits_without_an_extra(tmp_path: Path) -> None:
    # No build isolation: hatchling is in the test extra, so this needs no network.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            ".",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    (wheel,) = tmp_path.glob("sockscope-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        requires = [
            line.split(":", 1)[1].strip()
            for line in zf.read(meta).decode().splitlines()
            if line.startswith("Requires-Dist:")
        ]
        entry = zf.read(meta.replace("METADATA", "entry_points.txt")).decode()
    plain = [r for r in requires if "extra ==" not in r]
    assert any(r.startswith("textual") for r in plain) and any(r.startswith("rich") for r in plain)
    assert "sockscope = sockscope.cli.main:entry_point" in entry
