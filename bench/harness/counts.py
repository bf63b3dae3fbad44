"""A watcher's output, parsed and matched to nginx's log end by end. Pure: text in.

Every parser gives ``Observation``s (one per event about one end of a connection) and
the losses the watcher reported. ``tally`` then looks each connection nginx logged up
by its client's address and port, at both ends: the server end (local port = nginx's)
must be named after nginx, the client end after the client (ab). A client port can
repeat within a run (the kernel reuses it once the earlier connection is gone), so the
counts are matched per connection key: min(times logged, times seen).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

HOST = "127.0.0.1"

Addr = tuple[str, int]


class Observation(NamedTuple):
    """One event about one end: its kind, its local and remote ends, the process named."""

    kind: str
    local: Addr
    remote: Addr
    process: str | None


@dataclass
class Parsed:
    """What a watcher wrote: its observations, the events it said it lost, and the lines
    that were not events (headers, notices)."""

    observations: list[Observation] = field(default_factory=list)
    lost: int = 0
    skipped: int = 0


# ----------------------------------------------------------------------------- sockscope


def parse_sockscope_jsonl(lines: Iterable[str]) -> Parsed:
    """``sockscope watch --jsonl``: one JSON object per event; a ``lost`` event says how
    many events the kernel could not deliver in ``count``."""
    out = Parsed()
    append = out.observations.append
    for line in lines:
        try:
            ev = json.loads(line)
        except ValueError:
            out.skipped += 1
            continue
        kind = ev.get("event")
        if kind == "lost":
            # The eBPF source's lost events carry no count in --jsonl (its fast renderer
            # leaves it out): such an event still says something was lost.
            count = ev.get("count")
            out.lost += count if isinstance(count, int) else 1
            continue
        local = (ev.get("local_address"), ev.get("local_port"))
        remote = (ev.get("remote_address"), ev.get("remote_port"))
        append(Observation(kind, local, remote, ev.get("process")))
    return out


_OWNER = re.compile(r"(.+)/(\d+)$")


def _split_addr(text: str) -> Addr:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port) if port.isdigit() else 0


def parse_sockscope_text(lines: Iterable[str]) -> Parsed:
    """``sockscope watch`` without ``--jsonl``: ``time kind proto local remote state
    process/pid [details]``; ``time lost N events ...``; the summary's ``# `` lines are
    not events."""
    out = Parsed()
    for line in lines:
        words = line.split()
        if len(words) < 3 or line.startswith("#"):
            out.skipped += 1
            continue
        if words[1] == "lost":
            out.lost += int(words[2]) if words[2].isdigit() else 0
            continue
        if len(words) < 7:
            out.skipped += 1
            continue
        owner = next((m for w in words[6:] if (m := _OWNER.match(w))), None)
        process = owner.group(1) if owner is not None else None
        out.observations.append(Observation(words[1], _split_addr(words[3]), _split_addr(words[4]), process))
    return out


def parse_summary(stderr: str) -> dict[str, str]:
    """sockscope's summary: its ``# key: value`` lines."""
    out = {}
    for line in stderr.splitlines():
        if line.startswith("# ") and ":" in line:
            key, _, value = line[2:].partition(":")
            out[key.strip()] = value.strip()
    return out


def summary_lost(summary: dict[str, str]) -> int | None:
    """The ``lost events`` count of a summary (None if there is none)."""
    m = re.match(r"\d+", summary.get("lost events", ""))
    return int(m.group()) if m else None


# ----------------------------------------------------------------------------- peers


def parse_tcplife(lines: Iterable[str], stderr: str = "") -> Parsed:
    """libbpf-tools ``tcplife``: ``PID COMM LADDR LPORT RADDR RPORT TX_KB RX_KB MS`` per
    closed socket (COMM may hold spaces: the columns are taken from both ends); its
    perf buffer's losses as ``lost N events on CPU #C`` on stderr."""
    out = Parsed()
    for line in lines:
        words = line.split()
        if len(words) < 9 or not words[0].isdigit() or not words[-6].isdigit():
            out.skipped += 1
            continue
        laddr, lport, raddr, rport = words[-7:-3]
        comm = " ".join(words[1:-7])
        out.observations.append(Observation("closed", (laddr, int(lport)), (raddr, int(rport)), comm))
    out.lost = sum(int(n) for n in re.findall(r"^lost (\d+) events", stderr, re.M))
    return out


def parse_ss_events(lines: Iterable[str]) -> Parsed:
    """``ss -E -n -t -H``: ``State Recv-Q Send-Q Local:Port Peer:Port`` per closed socket;
    a listener's line (peer ``*``) is not a connection's."""
    out = Parsed()
    for line in lines:
        words = line.split()
        if len(words) < 5 or words[-1].endswith(":*"):
            out.skipped += 1
            continue
        out.observations.append(Observation("closed", _split_addr(words[3]), _split_addr(words[4]), None))
    return out


def parse_output(kind: str, text: str, stderr: str = "") -> Parsed:
    """The parser for a watcher's output kind (``WatcherSpec.output``)."""
    lines = text.splitlines()
    if kind == "jsonl":
        return parse_sockscope_jsonl(lines)
    if kind == "text":
        return parse_sockscope_text(lines)
    if kind == "tcplife":
        return parse_tcplife(lines, stderr)
    if kind == "ss":
        return parse_ss_events(lines)
    raise ValueError(f"no parser for {kind!r}")


# ----------------------------------------------------------------------------- matching


@dataclass
class EndCounts:
    """One end (server or client) of the logged connections: how many had each event."""

    opened: int = 0
    closed: int = 0
    opened_named: int = 0  # ... with the expected process named
    closed_named: int = 0
    names: Counter[str] = field(default_factory=Counter)  # the processes named on closes
    duplicates: int = 0  # closes beyond the opens seen on a 4-tuple seen opening


@dataclass
class Tally:
    """A watcher's events matched to the connections nginx logged."""

    logged: int = 0
    server: EndCounts = field(default_factory=EndCounts)
    client: EndCounts = field(default_factory=EndCounts)
    lost: int = 0
    kinds: Counter[str] = field(default_factory=Counter)  # every event by kind
    unmatched: int = 0  # events about no logged connection (ab's spares, other hosts' traffic)


def tally(
    parsed: Parsed,
    logged: Counter[Addr],
    port: int,
    server_name: str = "nginx",
    client_name: str = "ab",
) -> Tally:
    """Match ``parsed`` to ``logged`` (client address and port -> requests) on ``port``."""
    out = Tally(logged=sum(logged.values()), lost=parsed.lost)
    names = {"server": server_name, "client": client_name}
    # (end, kind, named right) -> connection key -> events seen
    seen: dict[tuple[str, str, bool], Counter[Addr]] = {}
    # (end, kind) -> every key, logged or not: a close beyond the opens is reported twice
    every: dict[tuple[str, str], Counter[Addr]] = {}
    for ob in parsed.observations:
        out.kinds[ob.kind] += 1
        if ob.local == (HOST, port):
            end, key = "server", ob.remote
        elif ob.remote == (HOST, port):
            end, key = "client", ob.local
        else:
            out.unmatched += 1
            continue
        every.setdefault((end, ob.kind), Counter())[key] += 1
        if key not in logged:
            out.unmatched += 1
            continue
        if ob.kind not in ("opened", "closed"):
            continue
        seen.setdefault((end, ob.kind, False), Counter())[key] += 1
        if ob.process == names[end]:
            seen.setdefault((end, ob.kind, True), Counter())[key] += 1
        if ob.kind == "closed":
            (out.server if end == "server" else out.client).names[ob.process or "-"] += 1
    for end, counts in (("server", out.server), ("client", out.client)):
        counts.opened = _matched(logged, seen.get((end, "opened", False)))
        counts.closed = _matched(logged, seen.get((end, "closed", False)))
        counts.opened_named = _matched(logged, seen.get((end, "opened", True)))
        counts.closed_named = _matched(logged, seen.get((end, "closed", True)))
        opens, closes = every.get((end, "opened")), every.get((end, "closed"), Counter())
        counts.duplicates = sum(max(0, n - opens[k]) for k, n in closes.items() if opens[k]) if opens else 0
    return out


def _matched(logged: Counter[Addr], seen: Counter[Addr] | None) -> int:
    if not seen:
        return 0
    return sum(min(n, seen[k]) for k, n in logged.items())
