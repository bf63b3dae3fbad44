"""``sockscope top`` on the command line: what it refuses, and ``sockscope`` alone."""

from __future__ import annotations

import io

from sockscope.cli.env import Env
from sockscope.cli.main import _with_default_command, main


def run(argv: list[str], tty: bool) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, Env(stdout=out, stderr=err, stdin_isatty=tty, stdout_isatty=tty))
    return code, out.getvalue(), err.getvalue()


def test_top_needs_a_terminal() -> None:
    code, _, err = run(["top"], tty=False)
    assert code == 2 and "top needs a terminal" in err


def test_a_bad_filter_is_refused_before_the_screen_opens() -> None:
    code, _, err = run(["top", "prot == 1"], tty=True)
    assert code == 2
    assert "unknown field 'prot'; did you mean 'proto'?" in err and "^" in err


def test_a_bad_recording_is_refused(tmp_path: object) -> None:
    code, _, err = run(["top", "--replay", "/nonexistent/run.db"], tty=True)
    assert code == 2 and "no such recording" in err


def test_sockscope_alone_is_top_on_a_terminal_and_list_in_a_pipe() -> None:
    assert _with_default_command([], interactive=True) == ["top"]
    assert _with_default_command([], interactive=False) == ["list"]
    assert _with_default_command(["-tan"], interactive=True) == ["list", "-tan"]
    code, out, _ = run([], tty=False)
    assert code == 0 and out.startswith("Active Internet connections")


def test_help_mentions_top() -> None:
    code, out, _ = run(["--help"], tty=False)
    assert code == 0 and "top       a live table" in out
    code, out, _ = run(["top", "--help"], tty=False)
    assert code == 0 and "--linger" in out and "--replay" in out
