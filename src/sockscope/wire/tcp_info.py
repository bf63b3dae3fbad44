"""Pure: ``struct tcp_info`` (``include/uapi/linux/tcp.h``).

Older kernels send a shorter struct; missing trailing fields read as zero, as ss does.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from operator import itemgetter

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


#: Where TcpInfo's fields are among TCP_INFO's values, in TcpInfo's field order: 8 u8,
#: then u32s from 8 (rto) to 31 (total_retrans), u64s from 32.
_POSITIONS = (23, 24, 8, 26, 10, 2, 31, 12, 14, 48, 34, 35, 49, 36, 37, 42, 32, 39, 19, 20)


def _codes(fmt: str) -> list[str]:
    """``"=2B1I"`` -> ``["B", "B", "I"]``: one struct code per field."""
    return [
        code for count, code in re.findall(r"(\d*)(\D)", fmt.lstrip("=@<>!")) for _ in range(int(count or 1))
    ]


def _wanted_only() -> tuple[struct.Struct, Callable[[tuple[int, ...]], tuple[int, ...]]]:
    # Every closed socket's tcp_info is decoded under load: the fields not shown are
    # skipped as pad bytes rather than converted to ints, then the rest put in order.
    codes = _codes(TCP_INFO.format)
    wanted = sorted(set(_POSITIONS))
    fmt = "=" + "".join(
        code if i in wanted else f"{struct.calcsize('=' + code)}x" for i, code in enumerate(codes)
    )
    return struct.Struct(fmt), itemgetter(*(wanted.index(i) for i in _POSITIONS))


_WANTED, _IN_ORDER = _wanted_only()


def parse_tcp_info(raw: bytes | bytearray, start: int = 0, end: int | None = None) -> TcpInfo:
    """Decode the fields sockscope shows from ``raw[start:end]``; shorter input is
    zero-padded."""
    end = len(raw) if end is None else end
    if end - start < TCP_INFO.size:
        raw, start = bytes(raw[start:end]) + b"\0" * (TCP_INFO.size - (end - start)), 0
    # Positional, in TcpInfo's field order: the keyword form costs twice as much.
    return _new(TcpInfo, _IN_ORDER(_WANTED.unpack_from(raw, start)))


_new = tuple.__new__
