"""Pure: ``struct tcp_info`` (``include/uapi/linux/tcp.h``).

Older kernels send a shorter struct; missing trailing fields read as zero, as ss does.
"""

from __future__ import annotations

import struct

from sockscope.model.endpoint import TcpInfo

# Eight __u8 (state, ca_state, retransmits, probes, backoff, options, wscales, flags), then:
# rto ato snd_mss rcv_mss unacked sacked lost retrans fackets (9 x u32)
# last_data_sent last_ack_sent last_data_recv last_ack_recv (4 x u32)
# pmtu rcv_ssthresh rtt rttvar snd_ssthresh snd_cwnd advmss reordering (8 x u32)
# rcv_rtt rcv_space total_retrans (3 x u32)
# pacing_rate max_pacing_rate bytes_acked bytes_received (4 x u64)
# segs_out segs_in notsent_bytes min_rtt data_segs_in data_segs_out (6 x u32)
# delivery_rate busy_time rwnd_limited sndbuf_limited (4 x u64)
# delivered delivered_ce (2 x u32) bytes_sent bytes_retrans (2 x u64)
TCP_INFO = struct.Struct("=8B24I4Q6I4Q2I2Q")


def parse_tcp_info(raw: bytes) -> TcpInfo:
    """Decode the fields sockscope shows; shorter input is zero-padded."""
    if len(raw) < TCP_INFO.size:
        raw = raw + b"\0" * (TCP_INFO.size - len(raw))
    v = TCP_INFO.unpack_from(raw, 0)
    # Offsets into v: 8 u8, then u32s from 8 (rto) to 31 (total_retrans), u64s from 32.
    # Positional, in TcpInfo's field order: every closed socket is decoded under load,
    # and the keyword form costs twice as much.
    return _new(TcpInfo, (
        v[23], v[24], v[8], v[26], v[10], v[2], v[31], v[12], v[14],
        v[48], v[34], v[35], v[49], v[36], v[37], v[42], v[32], v[39], v[19], v[20],
    ))


_new = tuple.__new__
