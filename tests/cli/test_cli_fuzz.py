"""The safety net: random command lines built from the real parser, run as a user would.

Every subcommand, flag and value comes from ``build_parser`` itself, so a new flag is
fuzzed the day it is added. Values are the hostile ones: paths of every kind
(directories, devices, FIFOs, names too long, read-only files, links), negative and huge
numbers, malformed and catastrophic filters. Whatever the line, the outcome is exit 0, 1
or 2 with at most a few lines on stderr, never a traceback, never a hang past ``BOUND``.
Commands that run until Ctrl-C get a stop condition appended (a later flag wins in
argparse, and the earlier hostile value is still checked), and servers and clients stay
on a free loopback port.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sockscope.cli.env import Env
from sockscope.cli.main import SUBCOMMANDS, build_parser

BOUND = 30.0  # seconds one command line may take (the slowest bounded run takes ~2 s)
MAX_STDERR_LINES = 5

#: Stop conditions and safe endpoints, appended after the fuzzed words.
BOUNDS = {
    "watch": ["--duration", "0.5"],
    "demo serve": ["--duration", "0.5", "--port", "0", "--bind", "127.0.0.1", "-q"],
    "demo clients": ["--duration", "0.5", "--host", "127.0.0.1", "--port", "9", "--connect-timeout", "0.5"],
    "capture": ["-a", "duration:0.5"],
    "exporter": ["--listen", "127.0.0.1:0"],
}
#: Servers with no stop condition of their own: they must start or refuse cleanly, and
#: stop on SIGTERM with status 0.
SERVERS = {"exporter"}
SERVE_FOR = 1.5

WORDS = ["", " ", "-", "--", "x", "é", "\x01", "a" * 5000, "-1", "0", "1e309", "nan", "%", "{", "'"]
FILTERS = [
    "port == 22",
    "state established",
    "lport in {1..65535}",
    'path ~ "(a+)+$"',
    'process ~ "(a|a)*b"',
    'process ~ "(a)\\1+b+"',
    "sourse == trace",
    "source == trace",
    "lport == 99999 and (",
    "((((((((((((((((((((",
    "port in {" + " ".join(str(p) for p in range(1, 4000)) + "}",
    "rtt > 200ms and not raddr in 10.0.0.0/8",
]
NUMBERS = [
    "1",
    "0",
    "-1",
    "-0.5",
    "2323",
    "65536",
    "99999999999999999999",
    "1e3",
    "abc",
    "1h",
    "10ms",
    "50MB",
]


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Paths of every kind, made once."""
    base = tmp_path_factory.mktemp("fuzz-paths")
    fifo, ro, link, loop = base / "fifo", base / "read-only", base / "link", base / "loop"
    os.mkfifo(fifo)
    ro.write_text("not a recording\n")
    ro.chmod(0o444)
    link.symlink_to(ro)
    loop.symlink_to(loop)
    return [
        str(base),
        "/",
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        str(fifo),
        str(ro),
        str(link),
        str(loop),
        "/proc/version",
        "/proc/self/ns/net",
        "/nonexistent/x.db",
        str(base / "new.db"),
        "a" * 5000,
        "/a" * 3000,
        "",
        "1",
    ]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def commands() -> dict[str, argparse.ArgumentParser]:
    """Every command line's leading words, with the parser of what follows them."""
    out: dict[str, argparse.ArgumentParser] = {}
    for name, sub in _subparsers(build_parser(Env())).items():
        nested = _subparsers(sub)
        out.update({f"{name} {n}": p for n, p in nested.items()} if nested else {name: sub})
    return out


COMMANDS = commands()
PATH_DESTS = {"netns", "record", "replay", "file"}


def _values(action: argparse.Action, paths: list[str]) -> st.SearchStrategy[str]:
    if action.choices:
        return st.sampled_from([*map(str, action.choices), *WORDS[:4]])
    if action.dest in PATH_DESTS:
        return st.sampled_from(paths)
    if action.type is not None:  # int, float, the units' durations, sizes and counts
        return st.sampled_from(NUMBERS)
    if action.dest in ("filter_expr", "filter", "topic"):
        return st.sampled_from(FILTERS + WORDS)
    return st.sampled_from(WORDS + NUMBERS + ["poll", "trace,destroy", "10.0.0.5", "::1"])


@st.composite
def command_lines(draw: st.DrawFn, paths: list[str]) -> list[str]:
    """A command, then a few of its options and positionals with hostile values."""
    name = draw(st.sampled_from(sorted(COMMANDS)))
    if name == "demo tour":  # a minute-long walk: only its parsing is fuzzed here
        return ["demo", "tour", draw(st.sampled_from(["--frob", "-h", "extra", "--auto=1"]))]
    actions = [a for a in COMMANDS[name]._actions if not isinstance(a, argparse._HelpAction)]
    words = name.split()
    for action in draw(st.lists(st.sampled_from(actions), max_size=5)):
        if action.option_strings:
            words.append(draw(st.sampled_from(action.option_strings)))
        if action.nargs != 0:
            words.append(draw(_values(action, paths)))
    if "--watch" in words:
        words += ["--watch", "0.1", "--count", "2"]
    return words + BOUNDS.get(name, [])


SOCKSCOPE = (sys.executable, "-m", "sockscope")
Done = subprocess.CompletedProcess[str]


def run_cli(
    argv: list[str], cwd: Path, program: tuple[str, ...] = SOCKSCOPE
) -> subprocess.CompletedProcess[str]:
    if argv and argv[0] in SERVERS:
        return _serve(argv, cwd, program)
    return subprocess.run(
        [*program, *argv],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=BOUND,
        check=False,
    )


def _serve(argv: list[str], cwd: Path, program: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    """Run a server briefly: it exits by itself (a refusal) or stops on SIGTERM."""
    proc = subprocess.Popen(
        [*program, *argv], cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, errors="replace",
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=SERVE_FOR)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=BOUND)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def check(argv: list[str], cwd: Path, program: tuple[str, ...] = SOCKSCOPE) -> None:
    proc = run_cli(argv, cwd, program)
    shown = " ".join(w if len(w) < 60 else f"{w[:20]}...({len(w)})" for w in argv)
    assert "Traceback" not in proc.stderr, f"{shown}\n{proc.stderr[-3000:]}"
    assert proc.returncode in (0, 1, 2), f"{shown}: exit {proc.returncode}\n{proc.stderr[-2000:]}"
    # watch --jsonl writes its '# ' summary to stderr, by design: not errors.
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("# ")]
    assert len(lines) <= MAX_STDERR_LINES, f"{shown}: {len(lines)} lines on stderr\n{proc.stderr[:2000]}"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_command_lines_end_cleanly(data: st.DataObject, paths: list[str], tmp_path: Path) -> None:
    check(data.draw(command_lines(paths)), tmp_path)


ISSUE_LINES = [
    ["list", "--netns", "/tmp"],
    ["list", "--netns", "a" * 5000],
    ["list", "-x", "-l", 'path ~ "(a+)+$"'],
    ["lsit"],
    ["replay"],
    ["watch", "--duration", "-1"],
    ["queues", "--warn", "150%"],
    ["watch", "source == trace", "--duration", "0.3"],
    ["list", "-tn", "port in {" + " ".join(str(p) for p in range(1, 16001)) + "}"],
    ["help", "filters"],
    ["stats", "a" * 5000],
    ["replay", "/dev/zero"],
]


@pytest.mark.parametrize("argv", ISSUE_LINES, ids=lambda a: " ".join(w[:12] for w in a)[:40])
def test_the_reported_lines_end_cleanly(argv: list[str], tmp_path: Path) -> None:
    check(argv, tmp_path)


def test_the_fuzzer_knows_every_command() -> None:
    assert {name.split()[0] for name in COMMANDS} == set(SUBCOMMANDS)
    assert {"demo serve", "demo clients", "demo tour"} <= set(COMMANDS)


@pytest.mark.parametrize(
    ("code", "caught"),
    [
        ("1/0", "Traceback"),
        ("raise SystemExit(3)", "exit 3"),
        ("print('x\\n' * 9, file=__import__('sys').stderr)", "lines"),
    ],
)
def test_the_check_catches_what_it_must(code: str, caught: str, tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match=caught):
        check([], tmp_path, program=(sys.executable, "-c", code))
