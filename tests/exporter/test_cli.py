"""``sockscope exporter``'s command line: help, bad input, the missing extra."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from sockscope.cli.env import Env
from sockscope.cli.main import DESCRIPTION, SUBCOMMANDS, main


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), Env(stdout=out, stderr=err))
    return code, out.getvalue(), err.getvalue()


def test_help_lists_the_command_and_its_examples() -> None:
    assert "exporter" in SUBCOMMANDS and "exporter" in DESCRIPTION
    code, out, _ = run("exporter", "--help")
    assert code == 0
    for words in ("--web-config", "--all-netns", "--max-series", "--ports", "examples:", "10127"):
        assert words in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--listen", "nowhere"], "--listen: not ADDR:PORT"),
        (["--listen", "::1:80"], "in brackets"),
        (["--ports", "80,http"], "not a port or range"),
        (["--ports", "9-3"], "within 1-65535"),
        (["--max-series", "0"], "must be at least 1"),
        (["--netns", "x", "--all-netns"], "exclude each other"),
        (["--source", "poll,magic"], "unknown source 'magic'"),
        (["port =="], "sockscope: "),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv: list[str], message: str) -> None:
    code, out, err = run("exporter", "--listen", "127.0.0.1:0", *argv)
    assert code == 2 and out == ""
    assert message in err and err.startswith("sockscope: ")
    assert "Traceback" not in err


def test_missing_namespace_is_exit_1() -> None:
    code, _, err = run("exporter", "--listen", "127.0.0.1:0", "--netns", "sockscope-no-such-ns")
    assert code == 1 and "no network namespace 'sockscope-no-such-ns'" in err
    assert err.strip().splitlines()[-1].startswith("sockscope: no network namespace")


def test_address_in_use_is_exit_1() -> None:
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code, _, err = run("exporter", "--no-events", "--listen", f"127.0.0.1:{port}")
    assert code == 1 and f"cannot listen on 127.0.0.1:{port}" in err


def test_missing_extra_names_it() -> None:
    code = (
        "import sys; sys.modules['prometheus_client'] = None; "
        "from sockscope.cli.main import main; sys.exit(main(['exporter']))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert res.returncode == 1
    assert (
        res.stderr.strip()
        == "sockscope: sockscope exporter needs the 'exporter' extra: pip install 'sockscope[exporter]'"
    )
