"""Pure: where the program reads what it reads, never assumed: the tracepoint record's
fields from the event's ``format`` file, kernel struct members from BTF.

Both differ between kernels (``tcp_sock`` grows and is reordered every few releases),
and a wrong offset read through ``bpf_probe_read_kernel`` returns garbage without an
error, so every offset and size is looked up and checked here.
"""

from __future__ import annotations

import re

from sockscope._namedtuple import NamedTuple
from sockscope.wire.ebpf.btf import Btf, BtfError
from sockscope.wire.ftrace import FormatError, parse_format

_FIELD = re.compile(r"field:(?P<decl>[^;]*);\s*offset:(?P<offset>\d+);\s*size:(?P<size>\d+);")

#: The tracepoint fields the program reads, with the sizes it reads them at.
CTX_FIELDS = {
    "skaddr": 8,
    "oldstate": 4,
    "newstate": 4,
    "sport": 2,
    "dport": 2,
    "family": 2,
    "protocol": 2,
    "saddr": 4,
    "daddr": 4,
    "saddr_v6": 16,
    "daddr_v6": 16,
}
#: The struct members it reads: (struct, member path, size).
KERNEL_MEMBERS = {
    "skc_net": ("sock", "__sk_common.skc_net.net", 8),
    "skc_cookie": ("sock", "__sk_common.skc_cookie", 8),
    "ns_inum": ("net", "ns.inum", 4),
    "bytes_sent": ("tcp_sock", "bytes_sent", 8),
    "bytes_acked": ("tcp_sock", "bytes_acked", 8),
    "bytes_received": ("tcp_sock", "bytes_received", 8),
    "srtt_us": ("tcp_sock", "srtt_us", 4),
    "total_retrans": ("tcp_sock", "total_retrans", 4),
}


class CtxLayout(NamedTuple):
    """Offsets of ``sock:inet_sock_set_state``'s fields in the record the program gets."""

    event_id: int
    skaddr: int
    oldstate: int
    newstate: int
    sport: int
    dport: int
    family: int
    protocol: int
    saddr: int
    daddr: int
    saddr_v6: int
    daddr_v6: int


class KernelOffsets(NamedTuple):
    """Byte offsets of the kernel struct members the program reads (``KERNEL_MEMBERS``)."""

    skc_net: int  # struct sock: the struct net pointer
    skc_cookie: int  # struct sock: the socket cookie (atomic64_t)
    ns_inum: int  # struct net: the namespace's inode number
    bytes_sent: int  # struct tcp_sock, as ss -i shows them
    bytes_acked: int
    bytes_received: int
    srtt_us: int  # << 3, as the kernel keeps it
    total_retrans: int


def parse_ctx_layout(format_text: str) -> CtxLayout:
    """The fields' offsets from ``events/sock/inet_sock_set_state/format``.

    Raises ``FormatError`` when a field is missing, of another size, or at an offset
    the program could not load from (the context allows only aligned loads, and none
    of its first 8 bytes).
    """
    event_id = parse_format(format_text).event_id  # the same checks as the tracefs reader
    found: dict[str, tuple[int, int]] = {}
    for m in _FIELD.finditer(format_text):
        name = m["decl"].split()[-1].split("[")[0]
        found[name] = (int(m["offset"]), int(m["size"]))
    offsets = []
    for name, size in CTX_FIELDS.items():
        if name not in found:
            raise FormatError(f"no field {name}")
        offset, actual = found[name]
        if actual != size:
            raise FormatError(f"field {name} is {actual} bytes, not {size}")
        if offset < 8 or offset % min(size, 8):
            raise FormatError(f"field {name} at offset {offset} cannot be loaded by a program")
        offsets.append(offset)
    return CtxLayout(event_id, *offsets)


def kernel_offsets(btf: Btf) -> KernelOffsets:
    """The members' offsets in this kernel; ``BtfError`` if one is missing or of another
    size than the program reads."""
    values = []
    for struct_name, path, size in KERNEL_MEMBERS.values():
        member = btf.member(struct_name, path)
        if member.size != size:
            raise BtfError(f"{struct_name}.{path} is {member.size} bytes here, not {size}")
        values.append(member.offset)
    return KernelOffsets(*values)
