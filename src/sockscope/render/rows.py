"""Pure: the rows of a netstat-, BSD- or ss-style listing, one pass over the endpoints.

These loops run once per socket (60k times on a busy host), so they are written for
speed: an endpoint is read as a tuple (a slice unpacks faster than attribute lookups),
address text is cached by object identity (addresses come from the decoder's shared
cache, and ``ipaddress`` hashing runs Python code), and labels come from a small table
per run of rows with the same protocol and family (a dump is one such run).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain, repeat
from operator import itemgetter

from sockscope.model.endpoint import Endpoint
from sockscope.render.labels import format_owners, proto_label, state_label
from sockscope.render.table import Column, header_line

TYPE_CHECKING = False  # not typing's, which costs ~3 ms to import (see sockscope._namedtuple)
if TYPE_CHECKING:
    from sockscope.render.listing import ListingStyle

RECV_Q = itemgetter(Endpoint._fields.index("recv_q"))
SEND_Q = itemgetter(Endpoint._fields.index("send_q"))
_INODE = Endpoint._fields.index("inode")
_SOCK_TYPE = Endpoint._fields.index("sock_type")


def netstat_text(
    endpoints: Sequence[Endpoint],
    style: ListingStyle,
    columns: list[Column],
    extras: list[Column],
    title: str | None,
) -> str | None:
    """The numeric netstat/BSD listing (``-tan``, ``-tanp``) in one pass, or None.

    The general path builds every cell, measures every column, then pads every cell:
    three passes over 60k rows. Here each row is written whole, padded as it goes, on
    the widths it will have: the queue columns' from their largest value, the address
    columns' 23 (no numeric IPv4 address and port is longer). The widths are checked
    afterwards from the distinct hosts and labels; where one is wider (a long IPv6
    address) this returns None and the general path lays the listing out instead.
    """
    nt = style.notation
    if nt.port_name is not None or style.extended or style.timers or style.info or style.explain:
        return None
    widths = [c.min_width for c in columns]
    widths[1] = max(widths[1], len(str(max(map(RECV_Q, endpoints), default=0))))
    widths[2] = max(widths[2], len(str(max(map(SEND_Q, endpoints), default=0))))
    rows = _Rows(style, widths)
    heads, states = rows.lay_out(endpoints)
    if rows.widest() > widths[3] or any(len(p) > widths[0] for p in rows.protos()):
        return None
    used = rows.states()
    widths[5] = max(widths[5], *map(len, used)) if used else widths[5]
    head_lines = [] if title is None else [title + "\n"]
    if style.header:
        # The owners column comes last, unpadded: its width never shows.
        head_lines.append(header_line([*columns, *extras], widths + [0] * len(extras)) + "\n")
    if not style.processes:
        return "".join(chain(head_lines, heads))
    padded = {text: text.ljust(widths[5]) + " " for text in used}
    return "".join(
        chain(
            head_lines,
            chain.from_iterable(
                zip(
                    heads,
                    map(padded.__getitem__, states),
                    owner_cells(endpoints, style.layout),
                    repeat("\n"),
                    strict=False,
                )
            ),
        )
    )


class _Rows:
    """The one pass of ``netstat_text``, with the caches it checks the widths against."""

    def __init__(self, style: ListingStyle, widths: list[int]) -> None:
        self.style = style
        self.widths = widths
        self.prefix: dict[int, str] = {}  # id(address) -> "host:"
        self.labels: dict[tuple[object, ...], dict[int, tuple[str, str, str]]] = {}
        self.longest = 0  # of the few addresses not written from a host prefix

    def protos(self) -> set[str]:
        return {lab[0][:-1] for group in self.labels.values() for lab in group.values()}

    def states(self) -> set[str]:
        return {lab[1] for group in self.labels.values() for lab in group.values()}

    def widest(self) -> int:
        """No address is longer than this (a port has at most 5 digits)."""
        return max(self.longest, max(map(len, self.prefix.values()), default=0) + 5)

    def lay_out(  # noqa: PLR0912, PLR0915 - one pass per row, see the module doc
        self,
        endpoints: Sequence[Endpoint],
    ) -> tuple[list[str], list[str]]:
        """Each row up to its state, and the states apart when a column follows them."""
        nt, layout, widths = self.style.notation, self.style.layout, self.widths
        width = widths[3]
        apart = self.style.processes  # the state column is padded then: owners follow
        prefix, labels = self.prefix, self.labels
        queues: dict[tuple[int, int], str] = {}
        no_peer: dict[int, str] = {}
        group: dict[int, tuple[str, str, str]] = {}
        g_proto: object = None
        g_family = g_type = None
        heads: list[str] = []
        states: list[str] = []
        add_head, add_state = heads.append, states.append
        sep = "." if nt.bsd else ":"
        empty = f"{'0'.rjust(widths[1])} {'0'.rjust(widths[2])} "
        inode_i, type_i = _INODE, _SOCK_TYPE
        for ep in endpoints:
            proto, family, state, la, lport, ra, rport, rq, sq = ep[:9]
            if proto is not g_proto or family != g_family or ep[type_i] is not g_type:
                g_proto, g_family, g_type = proto, family, ep[type_i]
                group = labels.setdefault((proto, family, g_type), {})
            key = state if ep[inode_i] else -state  # a queued child reads differently
            lab = group.get(key)
            if lab is None:
                text = state_label(ep, layout)
                lab = group[key] = (proto_label(ep, layout).ljust(widths[0]) + " ", text, text + "\n")
            if rq or sq:  # empty queues, the common case, skip building a key
                q = queues.get((rq, sq))
                if q is None:
                    q = queues[rq, sq] = f"{str(rq).rjust(widths[1])} {str(sq).rjust(widths[2])} "
            else:
                q = empty
            if la is None or (ra is None and rport is not None):
                local, remote = nt.local(ep), nt.remote(ep)
                self.longest = max(self.longest, len(local), len(remote))
            else:
                lh = prefix.get(id(la))
                if lh is None:
                    lh = prefix[id(la)] = nt.host(la) + sep
                local = f"{lh}{lport}"
                if ra is None:
                    remote = no_peer.get(family)  # type: ignore[assignment]
                    if remote is None:
                        remote = no_peer[family] = nt.remote(ep)
                        self.longest = max(self.longest, len(remote))
                else:
                    rh = prefix.get(id(ra))
                    if rh is None:
                        rh = prefix[id(ra)] = nt.host(ra) + sep
                    remote = f"{rh}{rport}"
            if apart:
                add_head(f"{lab[0]}{q}{local.ljust(width)} {remote.ljust(width)} ")
                add_state(lab[1])
            else:
                add_head(f"{lab[0]}{q}{local.ljust(width)} {remote.ljust(width)} {lab[2]}")
        return heads, states


def base_cells(endpoints: Sequence[Endpoint], style: ListingStyle) -> tuple[list[str], ...]:
    """The protocol, state, local and remote columns, for the general layout."""
    layout, nt = style.layout, style.notation
    numeric = nt.port_name is None
    # id(address) -> "host:" (numeric) or "host" (with names; the port is named per row).
    prefix: dict[int, str] = {}
    labels: dict[tuple[object, ...], dict[int, tuple[str, str]]] = {}
    group: dict[int, tuple[str, str]] = {}
    g_proto: object = None
    g_family = g_type = None
    no_peer: dict[int, str] = {}
    protos: list[str] = []
    states: list[str] = []
    local: list[str] = []
    remote: list[str] = []
    add_proto, add_state, add_local, add_remote = (protos.append, states.append, local.append, remote.append)
    sep = "." if nt.bsd else ":"
    inode_i, type_i = _INODE, _SOCK_TYPE
    for ep in endpoints:
        proto, family, state, la, lport, ra, rport = ep[:7]
        if proto is not g_proto or family != g_family or ep[type_i] is not g_type:
            g_proto, g_family, g_type = proto, family, ep[type_i]
            group = labels.setdefault((proto, family, g_type), {})
        # A queued child (inode 0) reads differently from a held socket in the same state.
        key = state if ep[inode_i] else -state
        lab = group.get(key)
        if lab is None:
            lab = group[key] = (proto_label(ep, layout), state_label(ep, layout))
        add_proto(lab[0])
        add_state(lab[1])
        if la is None or (ra is None and rport is not None):
            add_local(nt.local(ep))
            add_remote(nt.remote(ep))
            continue
        lh = prefix.get(id(la))
        if lh is None:
            lh = prefix[id(la)] = nt.host(la) + sep if numeric else nt.host(la)
        add_local(f"{lh}{lport}" if numeric else nt.join(lh, nt.port(lport, proto)))
        if ra is None:
            # "No peer" reads the same for every row of a family: "0.0.0.0:*", "*.*"...
            gone = no_peer.get(family)
            if gone is None:
                gone = no_peer[family] = nt.remote(ep)
            add_remote(gone)
            continue
        rh = prefix.get(id(ra))
        if rh is None:
            rh = prefix[id(ra)] = nt.host(ra) + sep if numeric else nt.host(ra)
        add_remote(f"{rh}{rport}" if numeric else nt.join(rh, nt.port(rport, proto)))  # type: ignore[arg-type]
    return protos, states, local, remote


def owner_cells(endpoints: Sequence[Endpoint], layout: str) -> list[str]:
    """``format_owners`` for every row, with the common single-holder netstat case inline
    (``-tanp`` at 60k rows spent more time in the call than in the formatting)."""
    if layout == "ss":
        return [format_owners(ep.owners, layout) for ep in endpoints]
    out: list[str] = []
    add = out.append
    for ep in endpoints:
        owners = ep.owners
        if not owners:
            add("-")
        elif len(owners) == 1:
            add(f"{owners[0][0]}/{owners[0][1]}")
        else:
            add(format_owners(owners, layout))
    return out
