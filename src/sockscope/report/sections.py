"""Pure: the report's tables of peers, ports, processes, transitions and captured packets."""

from __future__ import annotations

from sockscope.record.aggregate import RecordingData
from sockscope.report.model import Bars, Column, Kind, Plot, Section, Table
from sockscope.report.streams import Key, Stream, conn_key, match_stream

#: Captured connections listed (the busiest); the CSV has them all.
MAX_CAPTURE_ROWS = 50


def conversation_section(data: RecordingData) -> Section:
    """``sockscope stats``'s tables: conversations by peer and service port, busiest ports."""
    conv = Table(
        "conversations",
        "Conversations (closed connections) by peer and service port",
        (
            Column("Peer"),
            Column("Port"),
            Column("Conns", Kind.COUNT),
            Column("Bytes sent", Kind.BYTES),
            Column("Bytes recv", Kind.BYTES),
            Column("Mean duration", Kind.SECONDS),
            Column("Median", Kind.SECONDS),
            Column("Longest", Kind.SECONDS),
        ),
        [tuple(r) for r in data.conversations],
        note="The service port is the listener's: the local port when this host accepted "
        "the connection, the remote one when it connected out.",
    )
    ports = Table(
        "ports",
        "Busiest ports (closed connections)",
        (Column("Port"), Column("Conns", Kind.COUNT)),
        [tuple(r) for r in data.ports],
    )
    plots: list[Plot] = []
    if data.ports:
        plots.append(
            Bars(
                "ports",
                "Busiest service ports",
                "closed connections",
                [str(p) for p, _ in data.ports],
                [float(n) for _, n in data.ports],
            )
        )
    section = Section("conversations", "Conversations and ports", plots=plots, tables=[conv, ports])
    if not plots:
        section.empty = "No connection with a peer was closed."
    return section


def process_section(data: RecordingData) -> Section:
    """The processes behind the most events."""
    table = Table(
        "processes",
        "Top processes",
        (
            Column("Process"),
            Column("PID"),
            Column("Events", Kind.COUNT),
            Column("Opened", Kind.COUNT),
            Column("Closed", Kind.COUNT),
            Column("Bytes sent", Kind.BYTES),
            Column("Bytes recv", Kind.BYTES),
        ),
        [tuple(r) for r in data.processes],
        note="The process that acted: the one that connected, or the listener's owner for "
        "an accepted connection.",
    )
    section = Section("processes", "Processes", tables=[table])
    if data.processes:
        section.plots.append(
            Bars(
                "processes",
                "Events by process",
                "events",
                [f"{name}/{pid}" if pid is not None else name for name, pid, *_ in data.processes],
                [float(r[2]) for r in data.processes],
            )
        )
    else:
        section.empty = "No event names a process (without root, other users' are unknown)."
    return section


def transition_section(data: RecordingData) -> Section:
    """How often each TCP state change happened."""
    table = Table(
        "transitions",
        "State transitions",
        (Column("From"), Column("To"), Column("Count", Kind.COUNT)),
        [tuple(r) for r in data.transitions],
    )
    section = Section("transitions", "State transitions", tables=[table])
    if data.transitions:
        section.plots.append(
            Bars(
                "transitions",
                "State transitions",
                "transitions",
                [f"{a} → {b}" for a, b, _ in data.transitions],
                [float(n) for *_, n in data.transitions],
            )
        )
    else:
        section.empty = (
            "No state change was recorded (watch reports state events when asked: --events all, "
            "or a filter such as event == state)."
        )
    return section


def capture_section(data: RecordingData, streams: dict[Key, list[Stream]], capture: str) -> Section:
    """Packets per connection and the frames to jump to in Wireshark."""
    recorded: dict[int, tuple[object, ...]] = {}  # id(stream) -> what the recording says
    for la, lp, ra, rp, closed_at, duration, _state, pid, process in data.connections:
        stream = match_stream(streams.get(conn_key(la, lp, ra, rp), []), closed_at, duration)
        if stream is not None and id(stream) not in recorded:
            recorded[id(stream)] = (f"{process}/{pid}" if process else "-", duration)
    every = sorted(
        (s for group in streams.values() for s in group), key=lambda s: (-s.packets, s.first_frame)
    )
    rows = [_capture_row(s, recorded.get(id(s))) for s in every]
    table = Table(
        "capture",
        "Connections in the capture",
        (
            Column("Client"),
            Column("Server"),
            Column("Packets", Kind.COUNT),
            Column("SYN frame", Kind.FRAMES),
            Column("FIN frames", Kind.FRAMES),
            Column("RST frame", Kind.FRAMES),
            Column("Process"),
            Column("Duration", Kind.SECONDS),
        ),
        rows,
        note=f"Frame numbers as Wireshark shows them (Go to packet). {len(recorded)} of "
        f"{len(every)} captured connections are in the recording.",
        limit=MAX_CAPTURE_ROWS,
    )
    section = Section("capture", f"Packets per connection ({capture})", tables=[table])
    if every:
        section.plots.append(
            Bars(
                "capture",
                "Packets per connection (busiest)",
                "packets",
                [f"{_end(s.client)} → {_end(s.server)}" for s in every[:15]],
                [float(s.packets) for s in every[:15]],
            )
        )
    else:
        section.empty = "The capture holds no TCP connection."
    return section


def _end(end: tuple[str, int]) -> str:
    addr, port = end
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def _capture_row(s: Stream, rec: tuple[object, ...] | None) -> tuple[object, ...]:
    fins = ",".join(map(str, s.fin_frames))
    process, duration = rec if rec is not None else ("not recorded", None)
    return (_end(s.client), _end(s.server), s.packets, s.syn_frame, fins, s.rst_frame, process, duration)
