"""``list`` starts fast: its import path leaves out the modules it was tuned to avoid.

A plain listing is some 70 ms; each of these costs 3-10 ms to import (dataclasses and
inspect ~10, typing ~3, socket and selectors ~3, pathlib ~3, ctypes ~7...), and the
UI toolkits far more. The shortcuts that keep them out (sockscope._namedtuple, plain
classes instead of dataclasses, ``TYPE_CHECKING = False``, ``_socket``, lazy imports)
are kept only where this test fails without them.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.cli.golden_cases import GOLDEN, PROC

AVOIDED = frozenset(
    {
        "dataclasses",
        "inspect",
        "ast",
        "typing",
        "socket",
        "selectors",
        "pathlib",
        "contextlib",
        "shutil",
        "json",
        "csv",
        "ctypes",
        "subprocess",
        "sqlite3",
        "asyncio",
        "difflib",
        "textwrap",
        "rich",
        "textual",
    }
)

PROBE = """
import io, json, sys
from sockscope.cli.env import Env
from sockscope.cli.main import main
from tests.helpers.replay import ReplaySocket
argv, fixture, proc = json.loads(sys.argv[1])
env = {}
if fixture:
    replay = ReplaySocket.from_file(__import__("pathlib").Path(fixture))
    env = {"socket_factory": lambda: replay, "proc_root": proc}
for name in ("json", "pathlib", "socket", "typing"):  # the probe's own, not the listing's
    sys.modules.pop(name, None)
before = set(sys.modules)
code = main(argv, Env(stdout=io.StringIO(), stderr=io.StringIO(), **env))
print(json.dumps([code, sorted(set(sys.modules) - before)]))
"""


def loaded_by(argv: list[str], fixture: str | None = None) -> set[str]:
    """The modules ``main(argv)`` imports, in a fresh interpreter (with the tests'
    replay socket already loaded, it is not the listing's)."""
    arg = json.dumps([argv, fixture and str(GOLDEN / f"{fixture}.nlhex"), str(PROC)])
    out = subprocess.run(
        [sys.executable, "-c", PROBE, arg], capture_output=True, text=True, check=True, cwd=GOLDEN.parents[2]
    ).stdout
    code, modules = json.loads(out)
    assert code == 0
    return {m.split(".")[0] for m in modules}


@pytest.mark.parametrize(
    ("argv", "fixture"),
    [
        (["list", "-tuan"], "netstat"),
        (["-tuan"], "netstat"),
        (["list", "-tuanp"], "processes"),
        (["list", "-tuane"], "extended"),
        (["list", "-tano"], "timers"),
        (["list", "-tani"], "info"),
        (["list", "-a", "-n", "-f", "inet", "--bsd"], "bsd"),
        (["list", "-tuan", "--ss"], "ss"),
        (["list", "-tuln"], "netstat-listeners"),
        (["list", "-lxn"], None),
        (["list", "-tan", "--source", "procfs"], None),
    ],
)
def test_a_listing_leaves_the_avoided_modules_out(argv: list[str], fixture: str | None) -> None:
    assert loaded_by(argv, fixture) & AVOIDED == set()


def test_the_probe_sees_a_module_the_listing_loads() -> None:
    # --json needs json: the probe must see it, or the test above proves nothing.
    assert "json" in loaded_by(["list", "-tuan", "--json"], "netstat")
