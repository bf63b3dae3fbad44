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
    u32 = v[8:32]
    rto, _ato, snd_mss, _rcv_mss, unacked, _sacked, lost = u32[0:7]
    last_data_recv, last_ack_recv = u32[11], u32[12]
    rtt, rttvar, _ssth, snd_cwnd = u32[15], u32[16], u32[17], u32[18]
    total_retrans = u32[23]
    pacing_rate, _max_pacing, bytes_acked, bytes_received = v[32:36]
    segs_out, segs_in, _notsent, min_rtt = v[36:40]
    delivery_rate = v[42]
    bytes_sent, bytes_retrans = v[48], v[49]
    return TcpInfo(
        rtt_us=rtt, rttvar_us=rttvar, rto_us=rto, snd_cwnd=snd_cwnd, snd_mss=snd_mss,
        retransmits=v[2], total_retrans=total_retrans, unacked=unacked, lost=lost,
        bytes_sent=bytes_sent, bytes_acked=bytes_acked, bytes_received=bytes_received,
        bytes_retrans=bytes_retrans, segs_out=segs_out, segs_in=segs_in,
        delivery_rate=delivery_rate, pacing_rate=pacing_rate, min_rtt_us=min_rtt,
        last_data_recv_ms=last_data_recv, last_ack_recv_ms=last_ack_recv,
    )
