"""Thin I/O: this process's effective capabilities (``CapEff`` in ``/proc/self/status``)."""

from __future__ import annotations

import os

# include/uapi/linux/capability.h
CAP_DAC_OVERRIDE = 1
CAP_DAC_READ_SEARCH = 2
CAP_NET_ADMIN = 12
CAP_SYS_PTRACE = 19
CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39


def read_effective_caps(status_path: str = "/proc/self/status") -> int:
    """The effective capability mask; when unreadable, every bit for root and none else.

    Root in a container may lack some: the mask, not the uid, says what is allowed.
    """
    try:
        with open(status_path, encoding="ascii") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError, IndexError):
        pass
    return -1 if os.geteuid() == 0 else 0
