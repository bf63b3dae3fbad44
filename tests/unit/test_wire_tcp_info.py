"""``struct tcp_info`` decoded field by field, by its C names (include/uapi/linux/tcp.h)."""

from __future__ import annotations

import struct

from sockscope.wire.tcp_info import TCP_INFO, parse_tcp_info

U8 = ["state", "ca_state", "retransmits", "probes", "backoff", "options", "wscales", "flags"]
U32 = [
    "rto",
    "ato",
    "snd_mss",
    "rcv_mss",
    "unacked",
    "sacked",
    "lost",
    "retrans",
    "fackets",
    "last_data_sent",
    "last_ack_sent",
    "last_data_recv",
    "last_ack_recv",
    "pmtu",
    "rcv_ssthresh",
    "rtt",
    "rttvar",
    "snd_ssthresh",
    "snd_cwnd",
    "advmss",
    "reordering",
    "rcv_rtt",
    "rcv_space",
    "total_retrans",
]
U64 = ["pacing_rate", "max_pacing_rate", "bytes_acked", "bytes_received"]
U32_2 = ["segs_out", "segs_in", "notsent_bytes", "min_rtt", "data_segs_in", "data_segs_out"]
U64_2 = ["delivery_rate", "busy_time", "rwnd_limited", "sndbuf_limited"]
U32_3 = ["delivered", "delivered_ce"]
U64_3 = ["bytes_sent", "bytes_retrans"]
C_FIELDS = U8 + U32 + U64 + U32_2 + U64_2 + U32_3 + U64_3
OURS = {
    "rtt_us": "rtt",
    "rttvar_us": "rttvar",
    "rto_us": "rto",
    "snd_cwnd": "snd_cwnd",
    "snd_mss": "snd_mss",
    "retransmits": "retransmits",
    "total_retrans": "total_retrans",
    "unacked": "unacked",
    "lost": "lost",
    "bytes_sent": "bytes_sent",
    "bytes_acked": "bytes_acked",
    "bytes_received": "bytes_received",
    "bytes_retrans": "bytes_retrans",
    "segs_out": "segs_out",
    "segs_in": "segs_in",
    "delivery_rate": "delivery_rate",
    "pacing_rate": "pacing_rate",
    "min_rtt_us": "min_rtt",
    "last_data_recv_ms": "last_data_recv",
    "last_ack_recv_ms": "last_ack_recv",
}


def test_every_field_comes_from_its_c_field() -> None:
    assert len(C_FIELDS) == len(TCP_INFO.unpack(bytes(TCP_INFO.size)))
    values = {name: 10 + i for i, name in enumerate(C_FIELDS)}  # distinct, all fit a u8
    info = parse_tcp_info(TCP_INFO.pack(*(values[n] for n in C_FIELDS)))
    assert {ours: getattr(info, ours) for ours in OURS} == {o: values[c] for o, c in OURS.items()}


def test_an_older_kernels_shorter_struct_reads_zero_beyond_its_end() -> None:
    full = TCP_INFO.pack(*range(1, len(C_FIELDS) + 1))
    short = parse_tcp_info(full[: struct.calcsize("=8B24I")])  # up to total_retrans
    assert short.total_retrans == 8 + 24 and short.bytes_sent == 0 and short.segs_in == 0


def test_a_struct_inside_a_larger_message_is_read_between_its_bounds() -> None:
    full = TCP_INFO.pack(*range(1, len(C_FIELDS) + 1))
    message = bytearray(b"\xff" * 20 + full + b"\xff" * 12)
    assert parse_tcp_info(message, 20, 20 + len(full)) == parse_tcp_info(full)
    cut = 20 + struct.calcsize("=8B24I")
    short = parse_tcp_info(message, 20, cut)  # the bytes after `cut` are not its own
    assert short == parse_tcp_info(full[: cut - 20]) and short.bytes_sent == 0
