"""The listing on the real kernel, compared with ss on the same sockets (fresh netns each)."""

from __future__ import annotations

import io
import os
import re
from ipaddress import ip_address

import pytest

from sockscope.api import snapshot
from sockscope.cli.env import Env
from sockscope.cli.main import main
from sockscope.model.endpoint import Endpoint
from sockscope.model.states import TcpState
from tests.helpers import scenario
from tests.helpers.netns import ss

Row = tuple[str, int, int, str, str, str, str]


def _norm_host(host: str) -> str:
    host = host.strip("[]").split("%")[0]
    if host in ("*", "0.0.0.0", "::"):
        return "*"
    return str(ip_address(host))


def _split(addr: str) -> tuple[str, str]:
    host, _, port = addr.rpartition(":")
    return _norm_host(host), port


def parse_ss(text: str) -> list[Row]:
    """ss -H lines as (state, recv_q, send_q, lhost, lport, rhost, rport)."""
    rows = []
    for line in text.splitlines():
        cols = line.split()
        if not cols:
            continue
        state, rq, wq, local, peer = cols[:5]
        rows.append((state, int(rq), int(wq), *_split(local), *_split(peer)))
    return rows


def ours(ep: Endpoint) -> Row:
    local = "*" if ep.local_address.is_unspecified else str(ep.local_address)  # type: ignore[union-attr]
    if ep.remote_address is None:
        rhost, rport = "*", "*"
    else:
        rhost, rport = str(ep.remote_address), str(ep.remote_port)
    return (ep.state.ss_label_for(ep.proto), ep.recv_q, ep.send_q, local, str(ep.local_port), rhost, rport)


def test_tcp_listing_equals_ss(primer: str) -> None:
    snap = snapshot(protocols=["tcp"], netns=primer)
    states = {ep.state for ep in snap.endpoints}
    assert {
        TcpState.LISTEN,
        TcpState.ESTABLISHED,
        TcpState.TIME_WAIT,
        TcpState.CLOSE_WAIT,
        TcpState.FIN_WAIT2,
    } <= states
    assert any(ep.family == 6 and ep.state is TcpState.LISTEN for ep in snap.endpoints)
    assert any(
        ep.local_address is not None and getattr(ep.local_address, "ipv4_mapped", None)
        for ep in snap.endpoints
    ), "the v4-mapped connection is missing"
    assert sorted(ours(e) for e in snap.endpoints) == sorted(parse_ss(ss(primer, "-tanH")))


def test_udp_listing_equals_ss(primer: str) -> None:
    snap = snapshot(protocols=["udp"], netns=primer)
    assert [ours(e) for e in snap.endpoints] == parse_ss(ss(primer, "-uanH"))
    assert snap.endpoints[0].local_port == scenario.PORT_UDP


def test_listener_queue_figures_match_ss(primer: str) -> None:
    snap = snapshot(protocols=["tcp"], states=[TcpState.LISTEN], netns=primer)
    listener = next(e for e in snap.endpoints if e.local_port == scenario.PORT_LISTEN)
    assert listener.send_q == 16  # the backlog, which netstat shows as 0
    assert listener.remote_address is None and listener.remote_port is None


def _ss_owners(text: str) -> dict[tuple[str, str, str, str], set[tuple[str, int, int]]]:
    owners = {}
    for line in text.splitlines():
        cols = line.split()
        users = set(re.findall(r'\("([^"]+)",pid=(\d+),fd=(\d+)\)', line))
        owners[(*_split(cols[3]), *_split(cols[4]))] = {(n, int(p), int(f)) for n, p, f in users}
    return owners


def test_processes_match_ss(primer: str) -> None:
    snap = snapshot(protocols=["tcp"], netns=primer, processes=True)
    theirs = _ss_owners(ss(primer, "-tanpH"))
    mine = {ours(e)[3:]: {(o.name, o.pid, o.fd) for o in e.owners} for e in snap.endpoints}
    assert mine == theirs
    assert any(os.getpid() in {o.pid for o in e.owners} for e in snap.endpoints)


def _key(ep: Endpoint) -> tuple[object, ...]:
    # /proc shows no backlog for a listener (its tx_queue reads 0), so send_q is left out.
    return (
        ep.proto,
        ep.family,
        ep.state,
        ep.local_address,
        ep.local_port,
        ep.remote_address,
        ep.remote_port,
        ep.recv_q,
        ep.uid,
        ep.inode,
    )


def test_procfs_fallback_gives_the_same_endpoints(primer: str) -> None:
    kw = {"protocols": ["tcp", "udp"], "netns": primer}
    netlink = snapshot(source="netlink", **kw)  # type: ignore[arg-type]
    procfs = snapshot(source="procfs", **kw)  # type: ignore[arg-type]
    assert procfs.source == "procfs"
    assert len(netlink) >= 10
    assert sorted(map(_key, netlink.endpoints), key=repr) == sorted(map(_key, procfs.endpoints), key=repr)


def test_cli_says_which_source_when_not_netlink(primer: str) -> None:
    out = io.StringIO()
    code = main(
        ["list", "-tan", "--source", "procfs", "--netns", primer], Env(stdout=out, stderr=io.StringIO())
    )
    assert code == 0
    assert "[source: procfs]" in out.getvalue().splitlines()[0]
    assert "0.0.0.0:2323" in out.getvalue()


def test_primer_bsd_notation(primer: str) -> None:
    out = io.StringIO()
    assert (
        main(
            ["list", "-a", "-n", "-f", "inet", "--bsd", "--netns", primer],
            Env(stdout=out, stderr=io.StringIO()),
        )
        == 0
    )
    lines = out.getvalue().splitlines()
    listen = [ln.split() for ln in lines if ln.split()[3:4] == ["*.2323"]]
    assert listen and listen[0][4] == "*.*" and listen[0][5] == "LISTEN"
    est = [ln.split() for ln in lines if "ESTABLISHED" in ln and ".2323" in ln.split()[3]]
    assert est and re.fullmatch(r"127\.0\.0\.1\.\d+", est[0][4])


def test_unprivileged_run_warns_and_works(primer: str) -> None:
    """As 'nobody': the listing works, owners of root's sockets are hidden, one warning."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to nobody")
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: enter the namespace as root, then drop to nobody
        code = 99
        try:
            import ctypes  # noqa: PLC0415

            from sockscope.sources.netns import resolve_netns  # noqa: PLC0415

            # The fork inherited the primer's sockets: let root's process alone hold them
            # (a process that holds a socket is its owner, and may read its own fds).
            os.closerange(3, wfd)
            os.closerange(wfd + 1, 1 << 16)
            libc = ctypes.CDLL(None, use_errno=True)
            with open(resolve_netns(primer), "rb") as f:
                libc.setns(f.fileno(), 0x40000000)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            out, err = io.StringIO(), io.StringIO()
            code = main(["list", "-tanp"], Env(stdout=out, stderr=err))
            os.write(wfd, f"{code}\n{err.getvalue()}\0{out.getvalue()}".encode())
        finally:
            os._exit(code)
    os.close(wfd)
    data = b""
    while chunk := os.read(rfd, 65536):
        data += chunk
    os.waitpid(pid, 0)
    head, _, out = data.decode().partition("\0")
    code, _, err = head.partition("\n")
    assert code == "0"
    assert err.count("\n") == 1 and "warning" in err and "root" in err
    assert "127.0.0.1:2323" in out
    assert "python" not in out  # root's sockets show no owner to nobody
