"""Bad input and refusals: one line on stderr, the right status, and what to do instead."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.cli.helpers import as_nobody, run


def one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("sockscope: ")
    return err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["lsit"], "sockscope: unknown command 'lsit'; did you mean 'list'?\n"),
        (["qeueus", "-v"], "sockscope: unknown command 'qeueus'; did you mean 'queues'?\n"),
        (["wacth", "--duration", "1s"], "sockscope: unknown command 'wacth'; did you mean 'watch'?\n"),
    ],
)
def test_a_mistyped_command_is_named_with_the_nearest(argv: list[str], message: str) -> None:
    code, out, err = run(*argv)
    assert (code, out, err) == (2, "", message)


def test_an_unknown_word_lists_the_commands() -> None:
    code, _, err = run("frobnicate")
    assert code == 2 and "unknown command 'frobnicate'" in one_line(err) and "list, queues" in err


@pytest.mark.parametrize("argv", [["port", "==", "1"], ["state", "established"], ["not", "port", "==", "1"]])
def test_a_filter_without_a_command_is_still_a_filter(argv: list[str]) -> None:
    code, _, err = run(*argv, "--source", "procfs")
    assert code == 0 and "unknown command" not in err


def test_replay_without_its_file_names_only_the_file() -> None:
    code, _, err = run("replay")
    assert code == 2 and "required: file (" in one_line(err) and "FILTER" not in err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["watch", "--duration", "-1"], "argument --duration: a duration must be positive: '-1'"),
        (["watch", "--count", "-3"], "argument --count: must be at least 1"),
        (["watch", "--max-size", "-5MB", "--record", "x.db"], "a size must be positive: '-5MB'"),
        (["queues", "--watch", "-0.5"], "argument --watch: a duration must be positive"),
    ],
)
def test_a_negative_number_is_a_bad_value_not_a_missing_one(argv: list[str], needle: str) -> None:
    code, _, err = run(*argv)
    assert code == 2 and needle in one_line(err)


def test_bundled_family_flags_still_bundle() -> None:
    code, out, err = run("list", "-46tn", "--source", "procfs")
    assert code == 0 and out.startswith("Active Internet connections"), err


@pytest.mark.parametrize("spec", ["/tmp", "a" * 5000, "/a" * 3000, "/etc/passwd", "/dev/null", "/dev/full"])
def test_a_netns_that_is_no_namespace_is_one_line(spec: str) -> None:
    code, _, err = run("list", "--netns", spec)
    assert code == 1 and one_line(err) and len(err) < 200


def test_a_fifo_as_netns_does_not_wait_for_a_writer(tmp_path: os.PathLike[str]) -> None:
    fifo = os.path.join(tmp_path, "fifo")
    os.mkfifo(fifo)
    code, _, err = run("list", "--netns", fifo)
    assert code == 1 and "is not a network namespace" in one_line(err)


def test_entering_a_namespace_unprivileged_says_how_to_run_it_as_root(netns: str) -> None:
    def body() -> str:
        code, _, err = run("list", "-tn", "--netns", netns, program="/opt/venv/bin/sockscope")
        return f"{code} {err}"

    got = as_nobody(body)
    assert got == (
        "1 sockscope: entering a network namespace needs root; run it as root: "
        f"sudo /opt/venv/bin/sockscope list -tn --netns {netns}\n"
    )


def test_the_root_hint_quotes_what_the_shell_would_split(netns: str) -> None:
    def body() -> str:
        code, _, err = run("list", "--netns", netns, "port == 22", program="sockscope")
        return f"{code} {err}"

    assert as_nobody(body).endswith(f"sudo sockscope list --netns {netns} 'port == 22'\n")


def test_the_hint_names_a_python_dash_m_run_in_full() -> None:
    from sockscope.cli.env import Env  # noqa: PLC0415

    assert Env().as_root(["top"]).startswith("sudo /")


def test_a_catastrophic_pattern_against_a_hostile_socket_name_returns() -> None:
    name = "\0sockscope-" + "a" * 40 + "!"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(name)
        sock.listen()
        # re alone backtracks 2**40 ways on this name; the bound would fail the test.
        proc = subprocess.run(
            [sys.executable, "-m", "sockscope", "list", "-x", "-l", 'path ~ "(a+)+$"'],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert proc.returncode == 0 and "sockscope-aaa" not in proc.stdout
        proc = subprocess.run(
            [sys.executable, "-m", "sockscope", "list", "-x", "-l", 'path ~ "(a+)+!$"'],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert proc.returncode == 0 and "sockscope-aaa" in proc.stdout


def test_a_warning_about_root_says_how_to_run_as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    import io  # noqa: PLC0415

    from sockscope.cli import env as env_module  # noqa: PLC0415
    from sockscope.cli.env import Env  # noqa: PLC0415

    err = io.StringIO()
    env = Env(stderr=err, program="/opt/bin/sockscope")
    env.argv = ["watch", "port == 22"]
    monkeypatch.setattr(env_module.os, "geteuid", lambda: 1000)
    env.warn("tracepoint source off: the state-change tracepoint needs root")
    env.warn("nothing about privilege")
    env.error("binding port 23 needs root (or CAP_NET_BIND_SERVICE)")
    assert err.getvalue().splitlines() == [
        "sockscope: warning: tracepoint source off: the state-change tracepoint needs root; "
        "run it as root: sudo /opt/bin/sockscope watch 'port == 22'",
        "sockscope: warning: nothing about privilege",
        "sockscope: binding port 23 needs root (or CAP_NET_BIND_SERVICE); "
        "run it as root: sudo /opt/bin/sockscope watch 'port == 22'",
    ]
    monkeypatch.setattr(env_module.os, "geteuid", lambda: 0)
    assert env.with_root_hint("x needs root", True) == "x needs root"  # root has it already
