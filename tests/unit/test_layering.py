"""model/ and wire/ are pure: no I/O, no clock. This walks their AST and fails on I/O calls."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).parents[2] / "src" / "sockscope"
PURE = ["model", "wire", "render"]
FORBIDDEN_CALLS = {
    "open",
    "socket",
    "listdir",
    "scandir",
    "readlink",
    "read_text",
    "read_bytes",
    "write_text",
    "Popen",
    "run",
    "check_output",
    "system",
    "time",
    "monotonic",
    "perf_counter",
    "sleep",
    "getservbyport",
    "getservbyname",
    "gethostbyaddr",
    "getnameinfo",
    "getpwnam",
    "getpwuid",
    "now",
    "stat",
    "setns",
}
FORBIDDEN_IMPORTS = {
    "subprocess",
    "socket",
    "os",
    "time",
    "pathlib",
    "pwd",
    "ctypes",
    "select",
    "sockscope.sources",
    "sockscope.api",
    "sockscope.cli",
}


def pure_files() -> list[Path]:
    return sorted(p for layer in PURE for p in (PKG / layer).rglob("*.py"))


@pytest.mark.parametrize("path", pure_files(), ids=lambda p: str(p.relative_to(PKG)))
def test_pure_layers_do_no_io(path: Path) -> None:
    tree = ast.parse(path.read_text())
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in FORBIDDEN_CALLS:
                problems.append(f"line {node.lineno}: calls {name}()")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                if any(name == f or name.startswith(f + ".") for f in FORBIDDEN_IMPORTS):
                    problems.append(f"line {node.lineno}: imports {name}")
    assert not problems, f"{path.name} is in a pure layer but " + "; ".join(problems)


def test_the_check_catches_io(tmp_path: Path) -> None:
    """The walker itself must notice an open() call, or the test above proves nothing."""
    bad = "import os\ndef f():\n    return open('/proc/net/tcp').read()\n"
    tree = ast.parse(bad)
    calls = [n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    assert "open" in calls and "open" in FORBIDDEN_CALLS
