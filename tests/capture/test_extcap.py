"""sockscope as a Wireshark extcap interface, listed and run by the real tshark.

tshark ignores WIRESHARK_EXTCAP_DIR when run as root (a capture needs root), so the
launcher goes in the global extcap folder under a name of the test's own, and is
removed afterwards.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sockscope.cli.env import Env
from sockscope.cli.main import main
from sockscope.sources.wireshark import parse_folders, read_extcap_folder
from tests.helpers.capture import TSHARK, Load, needs_capture, tshark_fields, wait_for_size


def _run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["capture", *args], Env(stdout=out, stderr=err))
    return code, out.getvalue(), err.getvalue()


def test_the_extcap_queries_follow_the_grammar() -> None:
    code, out, _ = _run("--extcap-interfaces", "--extcap-version=4.0")
    assert code == 0
    assert out.splitlines() == [
        "extcap {version=0.1.0}{display=sockscope}",
        "interface {value=sockscope}{display=sockscope: packets labelled with their process}",
    ]
    code, out, _ = _run("--extcap-dlts", "--extcap-interface", "sockscope")
    assert code == 0
    assert out.startswith("dlt {number=1}{name=EN10MB}{display=")
    code, out, _ = _run("--extcap-config", "--extcap-interface", "sockscope")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("arg {number=0}{call=--filter}{display=Filter}{type=string}{tooltip=")
    calls = [line.split("{call=")[1].split("}")[0] for line in lines]
    assert calls == [
        "--filter",
        "--interface",
        "--netns",
        "--handshakes",
        "--snaplen",
        "--no-labels",
        "--bpf",
    ]


def test_wireshark_checks_a_capture_filter_in_either_language() -> None:
    assert _run("--extcap-interface", "sockscope", "--extcap-capture-filter", "port == 80")[0] == 0
    code, _, err = _run("--extcap-interface", "sockscope", "--extcap-capture-filter", "port ==")
    assert code == 2
    assert err.startswith("sockscope: bad filter")


def test_the_global_folder_is_read_from_tshark() -> None:
    v40 = (
        "Personal Plugins:\t/root/.local/lib/wireshark/plugins/4.0\n"
        + "Extcap path: \t/usr/lib/wireshark/extcap\n"
    )
    v42 = (
        "Personal Extcap path:\t/home/a/.local/lib/wireshark/extcap\nGlobal Extcap path:\t/usr/lib/x/extcap\n"
    )
    assert parse_folders(v40) == "/usr/lib/wireshark/extcap"
    assert parse_folders(v42) == "/usr/lib/x/extcap"
    assert parse_folders("nothing") is None


def test_install_writes_an_executable_launcher_once(tmp_path: Path) -> None:
    code, out, _ = _run("--install-extcap", "--extcap-dir", str(tmp_path), "--extcap-name", "sockscope-x")
    assert code == 0
    launcher = tmp_path / "sockscope-x"
    assert str(launcher) in out
    assert launcher.stat().st_mode & 0o777 == 0o755
    assert "-m sockscope capture --extcap-name sockscope-x" in launcher.read_text()
    done = subprocess.run([str(launcher), "--extcap-interfaces"], capture_output=True, text=True, check=True)
    assert "interface {value=sockscope-x}" in done.stdout
    code, _, err = _run("--install-extcap", "--extcap-dir", str(tmp_path), "--extcap-name", "sockscope-x")
    assert code == 2
    assert "exists; not overwritten without --force" in err


@pytest.fixture
def installed() -> Iterator[str]:
    name = f"sockscope-test-{uuid.uuid4().hex[:8]}"
    folder = read_extcap_folder()
    code, _, err = _run("--install-extcap", "--extcap-name", name)
    assert code == 0, err
    try:
        yield name
    finally:
        os.unlink(os.path.join(folder, name))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@needs_capture
def test_tshark_lists_and_captures_through_it_with_the_labels(installed: str, tmp_path: Path) -> None:
    assert TSHARK is not None
    listed = subprocess.run([TSHARK, "-D"], capture_output=True, text=True, check=True).stdout
    assert f"{installed} (sockscope: packets labelled with their process)" in listed
    port = _free_port()
    out = tmp_path / "extcap.pcapng"
    load = Load(None, "extload", 5, port)
    tshark = subprocess.Popen(
        [TSHARK, "-i", installed, "-f", f"port == {port}", "-a", "duration:30", "-w", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_size(out)  # tshark writes once the capture's section header arrived
        time.sleep(0.5)
        load.go()
        pid = load.wait()
        time.sleep(1.0)  # the capture's ring hands over a block within 0.1 s
        tshark.send_signal(signal.SIGINT)  # tshark stops the extcap with SIGTERM
        _, err = tshark.communicate(timeout=30)
    finally:
        if tshark.poll() is None:
            tshark.kill()
    assert tshark.returncode == 0, err
    rows = tshark_fields(out, "tcp.port", "frame.comment")
    assert len(rows) >= 5 * 8
    assert all(str(port) in r[0] for r in rows)
    assert all(f"PID: {pid}\\nCmd: extload" in r[1] for r in rows)


def test_a_pcap_filter_in_wireshark_s_box_is_taken_too() -> None:
    from sockscope.sources.pcap_compile import PcapMissingError, _load  # noqa: PLC0415

    try:
        _load()
    except PcapMissingError:
        pytest.skip("libpcap is not installed (scripts/test installs it with tshark)")
    assert _run("--extcap-interface", "sockscope", "--extcap-capture-filter", "tcp port 80")[0] == 0
    code, _, err = _run("--extcap-interface", "sockscope", "--extcap-capture-filter", "tcp port")
    assert code == 2
    assert err.startswith("sockscope: bad filter")  # neither language: sockscope's message
