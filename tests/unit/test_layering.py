"""The layers: model/, wire/ and render/ are pure (no I/O, no clock: this walks their AST and
fails on I/O calls), and imports go one way between the layers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).parents[2] / "src" / "sockscope"
#: Pure layers, and the pure modules of layers that also orchestrate I/O.
PURE = ["model", "wire", "render", "query/spec.py", "query/pushdown.py", "query/packets.py"]
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
    found: list[Path] = []
    for part in PURE:
        found += [PKG / part] if part.endswith(".py") else (PKG / part).rglob("*.py")
    return sorted(found)


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


#: What each layer may import of the package: data flows kernel -> wire -> model, and the
#: query layer sits between them (model never imports wire, query or sources). render may
#: read wire's layouts (the eBPF rows it formats directly; both are pure). Front doors
#: (cli, tui, demo...) may import anything. Top-level helper modules are open to all.
MAY_IMPORT = {
    "model": {"model"},
    "wire": {"model", "wire"},
    "render": {"model", "wire", "render"},
    "sources": {"model", "wire", "sources"},
    "query": {"model", "wire", "sources", "query"},
    "record": {"model", "record"},
    "watch": {"model", "wire", "sources", "query", "watch"},
}
TOP_LEVEL = {"_namedtuple"}


def _package_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "sockscope":
                names = [f"sockscope.{a.name}" for a in node.names]
        out += [(node.lineno, n) for n in names if n.startswith("sockscope.")]
    return out


def layered_files() -> list[Path]:
    return sorted(p for layer in MAY_IMPORT for p in (PKG / layer).rglob("*.py"))


@pytest.mark.parametrize("path", layered_files(), ids=lambda p: str(p.relative_to(PKG)))
def test_imports_go_one_way(path: Path) -> None:
    layer = path.relative_to(PKG).parts[0]
    allowed = MAY_IMPORT[layer] | TOP_LEVEL
    bad = [
        f"line {line}: imports {name}"
        for line, name in _package_imports(path)
        if name.split(".")[1] not in allowed
    ]
    assert not bad, f"{path.relative_to(PKG)} ({layer}) " + "; ".join(bad)


def test_the_direction_check_sees_imports(tmp_path: Path) -> None:
    bad = tmp_path / "x.py"
    bad.write_text("from sockscope.wire.bytecode import build_bytecode\nimport sockscope.sources.procfs\n")
    assert [n for _, n in _package_imports(bad)] == ["sockscope.wire.bytecode", "sockscope.sources.procfs"]
