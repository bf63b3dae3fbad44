"""Helpers for tests that build sockets inside a namespace of their own."""

from __future__ import annotations

import socket
import subprocess

from sockscope.sources.netns import entered_netns


def ss(ns: str, *args: str) -> str:
    """Run the real ``ss`` inside namespace ``ns`` and return its output."""
    return subprocess.run(
        ["ip", "netns", "exec", ns, "ss", *args], check=True, capture_output=True, text=True
    ).stdout


def socket_in(ns: str, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A socket created inside ``ns``; it stays there after we return to our own namespace."""
    with entered_netns(ns):
        return socket.socket(family, kind)
