"""Real destroy broadcasts: the one-pass decoder gives what the general one gives."""

from __future__ import annotations

import socket
import time

from sockscope.model.endpoint import Endpoint
from sockscope.model.states import Proto
from sockscope.sources.destroy import DestroySubscriber
from sockscope.sources.netns import entered_netns
from sockscope.wire.dump import walk_chunk
from sockscope.wire.inet_diag import parse_inet_diag_msg
from sockscope.wire.join import AddressCache, endpoint_from_destroy_msg, endpoint_from_inet_diag
from tests.helpers.netns import socket_in


def test_destroy_messages_decode_alike(netns: str) -> None:
    with entered_netns(netns):
        sub = DestroySubscriber((Proto.TCP, Proto.UDP), (4, 6))
    try:
        for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            srv = socket_in(netns, family)
            srv.bind((host, 0))
            srv.listen(4)
            cli = socket_in(netns, family)
            cli.connect(srv.getsockname())
            conn, _ = srv.accept()
            cli.sendall(b"x" * 1000)
            conn.recv(1000)
            for s in (cli, conn, srv):
                s.close()
            udp = socket_in(netns, family, socket.SOCK_DGRAM)
            udp.bind((host, 0))
            udp.close()
        time.sleep(0.2)
        sub._receive()  # the raw messages, not yet decoded
        chunks = [c for _at, c in sub._chunks if c is not None]
    finally:
        sub.close()
    fast: list[Endpoint] = []
    general: list[Endpoint] = []
    cache: AddressCache = {}

    def one_pass(b: bytearray, s: int, e: int) -> Endpoint:
        return endpoint_from_destroy_msg(b, s, e, cache)

    def two_pass(b: bytearray, s: int, e: int) -> Endpoint:
        msg = parse_inet_diag_msg(b, s, e)
        return endpoint_from_inet_diag(msg, Proto.UDP if msg.protocol == 17 else Proto.TCP, cache)

    for chunk in chunks:
        walk_chunk(chunk, len(chunk), fast, one_pass)
        walk_chunk(chunk, len(chunk), general, two_pass)
    assert fast == general
    protos = {(e.proto, e.family) for e in fast}
    assert protos == {(Proto.TCP, 4), (Proto.TCP, 6), (Proto.UDP, 4), (Proto.UDP, 6)}
    assert 1000 in [e.tcp_info.bytes_sent for e in fast if e.tcp_info]
