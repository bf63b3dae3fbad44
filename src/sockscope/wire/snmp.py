"""Pure: ``/proc/net/netstat`` and ``/proc/net/snmp`` (pairs of header and value lines)."""

from __future__ import annotations

from sockscope.wire.errors import ParseError


def parse_snmp_counters(text: str) -> dict[str, int]:
    """``{"TcpExt.ListenOverflows": 3, ...}`` from one file's header/value line pairs.

    Raises:
        ParseError: a header line without its matching value line.
    """
    lines = [ln for ln in text.splitlines() if ln.strip()]
    out: dict[str, int] = {}
    for head, vals in zip(lines[::2], lines[1::2], strict=False):
        hname, _, hkeys = head.partition(":")
        vname, _, vvals = vals.partition(":")
        keys, values = hkeys.split(), vvals.split()
        if hname != vname or len(keys) != len(values):
            raise ParseError(f"/proc/net counters: {hname!r} header does not match its values")
        for k, v in zip(keys, values, strict=True):
            try:
                out[f"{hname}.{k}"] = int(v)
            except ValueError:
                raise ParseError(f"/proc/net counters: {hname}.{k} is not a number: {v!r}") from None
    if len(lines) % 2:
        raise ParseError("/proc/net counters: a header line has no value line")
    return out
