"""Wireshark's extcap interface (``extcap(4)``): sockscope as a capture interface.

Wireshark runs every program in its extcap folder with ``--extcap-interfaces``, then
``--extcap-dlts`` and ``--extcap-config`` for each interface named, and, to capture,
``--capture --extcap-interface NAME --fifo PATH`` with the options the user chose
(the ``call`` names below are ``capture``'s own flags). It stops the capture with
SIGTERM. ``install_launcher`` writes the program Wireshark runs: a shell script that
starts this Python with ``-m sockscope capture``.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from sockscope.capture.output import OutputError

DEFAULT_NAME = "sockscope"
EXECUTABLE = 0o755
VERSION = "0.1.0"

_CONFIG = (
    ("--filter", "Filter", "string", "sockscope filter, e.g. port == 80 and process ~ nginx"),
    ("--interface", "Interface", "string", "one interface; empty for every interface"),
    ("--netns", "Network namespace", "string", "a name (ip netns), a PID or a path; empty for this one"),
    ("--handshakes", "Handshakes only", "boolflag", "SYN, FIN and RST segments: ports opening and closing"),
    ("--snaplen", "Snap length", "unsigned", "bytes kept of each packet; 0 for the default"),
    ("--no-labels", "No process labels", "boolflag", "do not name each packet's process"),
    ("--bpf", "pcap-filter expression", "string", "a tcpdump-style filter, compiled by libpcap"),
)


def _clean(text: str) -> str:
    # Braces delimit the grammar's fields; keep them out of values.
    return text.replace("{", "(").replace("}", ")")


def render_interfaces(name: str = DEFAULT_NAME) -> str:
    """``--extcap-interfaces``: this program and its one interface."""
    return (
        f"extcap {{version={VERSION}}}{{display=sockscope}}\n"
        f"interface {{value={_clean(name)}}}{{display=sockscope: packets labelled with their process}}\n"
    )


def render_dlts(name: str = DEFAULT_NAME) -> str:
    """``--extcap-dlts``: the link type of its packets (pcapng: each interface says its own)."""
    return "dlt {number=1}{name=EN10MB}{display=Ethernet (interfaces without one: raw IP)}\n"


def render_config(name: str = DEFAULT_NAME) -> str:
    """``--extcap-config``: the options Wireshark's dialog offers."""
    lines = []
    for i, (call, display, kind, tip) in enumerate(_CONFIG):
        lines.append(
            f"arg {{number={i}}}{{call={call}}}{{display={_clean(display)}}}"
            f"{{type={kind}}}{{tooltip={_clean(tip)}}}\n"
        )
    return "".join(lines)


def launcher_text(name: str, python: str = sys.executable) -> str:
    """The script Wireshark runs."""
    return (
        "#!/bin/sh\n"
        "# Installed by 'sockscope capture --install-extcap': sockscope as a Wireshark interface.\n"
        f'exec {shlex.quote(python)} -m sockscope capture --extcap-name {shlex.quote(name)} "$@"\n'
    )


def install_launcher(folder: str, name: str = DEFAULT_NAME, *, force: bool = False) -> Path:
    """Write the launcher into ``folder``, executable, never through a symbolic link.

    Raises:
        OutputError: it exists (without ``force``) or cannot be written.
    """
    if "/" in name or not name:
        raise OutputError(f"bad extcap name {name!r}")
    path = Path(folder) / name
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, EXECUTABLE)
    except FileExistsError:
        raise OutputError(f"{path} exists; not overwritten without --force") from None
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as f:
        f.write(launcher_text(name))
        os.fchmod(fd, EXECUTABLE)  # whatever the umask: Wireshark runs it as any user
    return path
