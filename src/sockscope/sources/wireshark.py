"""Thin I/O: asking the installed Wireshark where it looks for extcap programs."""

from __future__ import annotations

import shutil
import subprocess

#: The line of ``tshark -G folders`` naming the extcap folder ("Extcap path:" in 4.0,
#: "Global Extcap path:" with a personal one beside it from 4.2).
_KEYS = ("global extcap path", "extcap path")


class WiresharkMissingError(Exception):
    """No tshark or wireshark to ask."""


def parse_folders(text: str) -> str | None:
    """The global extcap folder from ``tshark -G folders`` output."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            found.setdefault(key.strip().lower(), value.strip())
    return next((found[k] for k in _KEYS if found.get(k)), None)


def read_extcap_folder() -> str:
    """The folder the installed Wireshark reads extcap programs from.

    Raises:
        WiresharkMissingError: neither tshark nor wireshark is installed, or says.
    """
    for tool in ("tshark", "wireshark"):
        path = shutil.which(tool)
        if path is None:
            continue
        done = subprocess.run(
            [path, "-G", "folders"], capture_output=True, text=True, timeout=30, check=False
        )
        folder = parse_folders(done.stdout)
        if folder:
            return folder
    raise WiresharkMissingError(
        "no tshark or wireshark found to ask for its extcap folder (give --extcap-dir)"
    )
