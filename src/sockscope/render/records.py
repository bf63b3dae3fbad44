"""Pure: endpoints as flat records for ``--json``, ``--jsonl`` and ``--csv``.

Every format uses the same keys, documented in the README.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence

from sockscope.model.endpoint import Endpoint, Snapshot
from sockscope.model.states import Proto

BASE_KEYS = (
    "proto",
    "family",
    "state",
    "local_address",
    "local_port",
    "remote_address",
    "remote_port",
    "recv_q",
    "send_q",
    "uid",
    "inode",
    "cookie",
    "queued",
    "owners",
)
INFO_KEYS = (
    "rtt",
    "rttvar",
    "rto",
    "cwnd",
    "retransmits",
    "retrans",
    "bytes_sent",
    "bytes_acked",
    "bytes_received",
    "bytes_retrans",
    "delivery_rate",
    "min_rtt",
)
TIMER_KEYS = ("timer", "timer_expires_ms", "timer_retransmits")
UNIX_KEYS = ("path", "peer_inode", "type")


def endpoint_record(ep: Endpoint, info: bool = False, timers: bool = False) -> dict[str, object]:
    """One endpoint as a flat dict; a wildcard local address is ``0.0.0.0`` or ``::``."""
    rec: dict[str, object] = {
        "proto": ep.proto.value,
        "family": ep.family or None,
        "state": ep.state.label(ep.proto),
        "local_address": None if ep.local_address is None else str(ep.local_address),
        "local_port": ep.local_port,
        "remote_address": None if ep.remote_address is None else str(ep.remote_address),
        "remote_port": ep.remote_port,
        "recv_q": ep.recv_q,
        "send_q": ep.send_q,
        "uid": ep.uid,
        "inode": ep.inode,
        "cookie": ep.cookie,
        "queued": ep.queued,
        "owners": [{"pid": o.pid, "name": o.name, "fd": o.fd} for o in ep.owners],
    }
    if ep.proto is Proto.UNIX:
        rec.update(path=ep.path, peer_inode=ep.peer_inode, type=ep.sock_type)
    if info:
        rec.update(_info_record(ep))
    if timers:
        t = ep.timer
        rec.update(
            timer=t.kind if t else "off",
            timer_expires_ms=t.expires_ms if t else 0,
            timer_retransmits=t.retransmits if t else 0,
        )
    return rec


def _info_record(ep: Endpoint) -> dict[str, object]:
    i = ep.tcp_info
    if i is None:
        return dict.fromkeys(INFO_KEYS)
    return {
        "rtt": i.rtt_us / 1000,
        "rttvar": i.rttvar_us / 1000,
        "rto": i.rto_us / 1000,
        "cwnd": i.snd_cwnd,
        "retransmits": i.retransmits,
        "retrans": i.total_retrans,
        "bytes_sent": i.bytes_sent,
        "bytes_acked": i.bytes_acked,
        "bytes_received": i.bytes_received,
        "bytes_retrans": i.bytes_retrans,
        "delivery_rate": i.delivery_rate,
        "min_rtt": i.min_rtt_us / 1000,
    }


def snapshot_header(snap: Snapshot) -> dict[str, object]:
    """The envelope fields of ``--json``: when, where and how the snapshot was read."""
    return {
        "time": snap.taken_at,
        "host": snap.host,
        "kernel": snap.kernel,
        "netns": snap.netns or None,
        "source": snap.source,
        "warnings": list(snap.warnings),
        "count": len(snap.endpoints),
    }


def render_json(
    snap: Snapshot, endpoints: Sequence[Endpoint], info: bool = False, timers: bool = False
) -> str:
    """One JSON document: the header and an ``endpoints`` array."""
    doc = snapshot_header(snap)
    doc["count"] = len(endpoints)
    doc["endpoints"] = [endpoint_record(e, info, timers) for e in endpoints]
    return json.dumps(doc, indent=1)


def render_jsonl(endpoints: Iterable[Endpoint], info: bool = False, timers: bool = False) -> Iterable[str]:
    """One JSON object a line, nothing else."""
    dumps = json.dumps
    for ep in endpoints:
        yield dumps(endpoint_record(ep, info, timers), separators=(",", ":"))


def render_csv(
    endpoints: Iterable[Endpoint], info: bool = False, timers: bool = False, unix: bool = False
) -> str:
    """CSV with a header row; ``owners`` is ``pid/name/fd`` items joined by ``;``."""
    keys = (
        list(BASE_KEYS)
        + (list(UNIX_KEYS) if unix else [])
        + (list(INFO_KEYS) if info else [])
        + (list(TIMER_KEYS) if timers else [])
    )
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for ep in endpoints:
        rec = endpoint_record(ep, info, timers)
        rec["owners"] = ";".join(f"{o.pid}/{o.name}/{o.fd}" for o in ep.owners)
        writer.writerow({k: "" if rec.get(k) is None else rec.get(k) for k in keys})
    return out.getvalue()
