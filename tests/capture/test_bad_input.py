"""Bad input to ``sockscope capture``: one line, the right exit status, no file left."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from sockscope.cli.env import Env
from sockscope.cli.main import main
from tests.conftest import IS_ROOT, needs_root
from tests.helpers.capture import needs_capture


def _run(*args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["capture", *args], Env(stdout=out, stderr=err))
    return code, err.getvalue()


def _one_line(err: str) -> str:
    """The message; a filter's may be followed by the filter with a caret under the
    fault, as every command shows it."""
    lines = err.splitlines()
    assert err.startswith("sockscope: ") and "Traceback" not in err, err
    assert len(lines) == 1 or (len(lines) == 3 and lines[2].strip() == "^"), err
    return lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["port =="], "expected a value"),
        (["prot == 80"], "unknown field 'prot'"),
        (["event == closed"], "a field of socket events; use it in --until"),
        (["--until", "evnt == closed"], "--until: "),
        (["-a", "duration"], "-a 'duration': expected one of"),
        (["-a", "packets:0"], "must be positive"),
        (["-b", "files:3"], "-b files:N needs -b filesize, duration or packets"),
        (["-a", "files:2"], "-a files:N needs -b"),
        (["--snaplen", "300000"], "--snaplen must be between 0 and 262144"),
    ],
)
def test_bad_options_and_filters_are_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    target = tmp_path / "x.pcapng"
    code, err = _run("-w", str(target), *args)
    assert code == 2
    assert message in _one_line(err)
    assert not target.exists()


def test_ring_files_need_a_file(tmp_path: Path) -> None:
    code, err = _run("-w", "-", "-b", "filesize:10")
    assert code == 2
    assert "-b needs -w FILE" in _one_line(err)


def test_a_terminal_gets_no_pcapng_without_asking() -> None:
    out, err = io.StringIO(), io.StringIO()
    code = main(["capture", "port == 80"], Env(stdout=out, stderr=err, stdout_isatty=True))
    assert code == 2
    assert "-w FILE, or -w - for standard output" in _one_line(err.getvalue())


@needs_root
def test_an_unknown_interface(tmp_path: Path) -> None:
    target = tmp_path / "x.pcapng"
    code, err = _run("-i", "nosuch0", "-w", str(target), "-a", "duration:1")
    assert code == 2
    assert "no interface 'nosuch0'" in _one_line(err)
    assert not target.exists()


@needs_root
def test_an_unknown_namespace(tmp_path: Path) -> None:
    target = tmp_path / "x.pcapng"
    code, err = _run("--netns", "sockscope-test-nosuch", "-w", str(target))
    assert code == 1
    assert "no network namespace 'sockscope-test-nosuch'" in _one_line(err)
    assert not target.exists()


@needs_capture
def test_a_pcap_expression_that_does_not_compile(tmp_path: Path) -> None:
    target = tmp_path / "x.pcapng"
    code, err = _run("--bpf", "tcp port", "-w", str(target))
    assert code == 2
    assert "--bpf: can't parse filter expression: syntax error" in _one_line(err)
    assert not target.exists()


@needs_root
def test_an_unwritable_file(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "dir.pcapng"
    code, err = _run("-i", "lo", "-w", str(target), "-a", "duration:1", "--no-labels")
    assert code == 2
    assert f"cannot write {target}: No such file or directory" in _one_line(err)
    assert not target.parent.exists()


@pytest.mark.skipif(not IS_ROOT, reason="needs root to become nobody")
def test_without_cap_net_raw(tmp_path: Path) -> None:
    """As nobody (a fork that drops to uid 65534, as runuser would; root's Python here is
    in a home nobody may not enter): one line, status 1, no file."""
    os.chmod(tmp_path, 0o777)
    target = tmp_path / "x.pcapng"
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            err = io.StringIO()
            code = main(["capture", "-w", str(target), "--no-labels"], Env(stdout=io.StringIO(), stderr=err))
            os.write(write, f"{code}\n{err.getvalue()}".encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        code_text, _, err = f.read().partition("\n")
    os.waitpid(pid, 0)
    assert code_text == "1"
    assert "capturing packets needs CAP_NET_RAW (run as root)" in _one_line(err)
    assert not target.exists()
