"""Pure: the short labels a listing writes for each endpoint: protocol, state, owners."""

from __future__ import annotations

from collections.abc import Sequence

from sockscope.model.endpoint import Endpoint, Owner
from sockscope.model.states import Proto, TcpState

QUEUED_MARK = "(queued)"  # no blank: the state stays one field for awk


def proto_label(ep: Endpoint, layout: str) -> str:
    """``tcp``/``tcp6`` as netstat writes it, ``tcp4``/``tcp6`` as BSD, ``tcp`` as ss."""
    if ep.proto is Proto.UNIX:
        return "unix" if layout != "ss" else _UNIX_NETID.get(ep.sock_type or "", "u_str")
    if layout == "ss":
        return ep.proto.value
    if ep.family == 6:
        return f"{ep.proto.value}6"
    return f"{ep.proto.value}4" if layout == "bsd" else ep.proto.value


_UNIX_NETID = {"stream": "u_str", "dgram": "u_dgr", "seqpacket": "u_seq"}


def state_label(ep: Endpoint, layout: str) -> str:
    """The state, with ``(queued)`` when TCP accepted it and the application has not."""
    if layout == "ss":
        text = ep.state.ss_label_for(ep.proto)
    elif ep.proto is Proto.UDP and ep.state is TcpState.CLOSE and layout == "netstat":
        text = ""  # netstat leaves an unconnected UDP socket's state blank
    else:
        text = ep.state.label(ep.proto)
    return text + QUEUED_MARK if ep.queued else text


def format_owners(owners: Sequence[Owner], layout: str) -> str:
    """``1234/nginx`` (netstat) or ``users:(("nginx",pid=1234,fd=6))`` (ss); ``-`` when none."""
    if not owners:
        return "" if layout == "ss" else "-"
    if layout == "ss":
        inner = ",".join(f'("{o.name}",pid={o.pid},fd={o.fd})' for o in owners)
        return f"users:({inner})"
    seen: dict[int, str] = {}
    for o in owners:
        seen.setdefault(o.pid, o.name)
    return ",".join(f"{pid}/{name}" for pid, name in seen.items())
