"""The listings compared as text against recorded kernel bytes (tests/cli/test_golden.py).

``tools/record_fixtures.py`` runs each command inside the primer's namespace and keeps
what the kernel answered and what sockscope printed; the test replays the answers and
expects the same text. Names are numeric (-n): a resolver's answers are the host's.
"""

from __future__ import annotations

from pathlib import Path

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden"
PROC = GOLDEN / "proc"

CASES: dict[str, list[str]] = {
    "netstat": ["list", "-tuan"],
    "netstat-listeners": ["list", "-tuln"],
    "bsd": ["list", "-a", "-n", "-f", "inet", "--bsd"],
    "ss": ["list", "-tuan", "--ss"],
    "extended": ["list", "-tuane"],
    "timers": ["list", "-tano"],
    "processes": ["list", "-tuanp"],
    "info": ["list", "-tani"],
    "summary": ["list", "-s", "-tua"],
    "filtered": ["list", "-tan", "state established and lport == 2323"],
    "queues": ["queues"],
    "queues-verbose": ["queues", "-v", "--bsd"],
    "queues-explain": ["queues", "--explain"],
}
