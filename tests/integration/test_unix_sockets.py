"""UNIX sockets (-x) against ss -x on the same sockets, in a fresh namespace."""

from __future__ import annotations

import io
import socket

from sockscope.api import snapshot
from sockscope.cli.env import Env
from sockscope.cli.main import main
from tests.helpers.netns import socket_in, ss


def test_unix_listing_matches_ss(netns: str) -> None:
    srv = socket_in(netns, socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind("\0sockscope-test-" + netns)
    srv.listen()
    cli = socket_in(netns, socket.AF_UNIX, socket.SOCK_STREAM)
    cli.connect("\0sockscope-test-" + netns)
    acc, _ = srv.accept()
    dgram = socket_in(netns, socket.AF_UNIX, socket.SOCK_DGRAM)
    dgram.bind("\0sockscope-dgram-" + netns)
    try:
        snap = snapshot(protocols=["unix"], netns=netns)
        ours = {(e.inode, e.path or "*", e.peer_inode or 0) for e in snap.endpoints}
        theirs = set()
        for line in ss(netns, "-xanH").splitlines():
            cols = line.split()
            # Netid State Recv-Q Send-Q Local Port Peer Port
            theirs.add((int(cols[5]), cols[4], int(cols[7])))
        assert ours == theirs
        assert any(e.path == "@sockscope-test-" + netns and e.state.name == "LISTEN" for e in snap.endpoints)
        out = io.StringIO()
        assert main(["list", "-x", "-a", "--netns", netns], Env(stdout=out)) == 0
        assert "@sockscope-dgram-" + netns in out.getvalue()
    finally:
        for s in (srv, cli, acc, dgram):
            s.close()
