"""How fast can a Python watcher be at all? The CPU floor of `watch`'s unavoidable work.

Run from the checkout: ``.venv/bin/python tools/watch_floor.py [--write-results]``. No
root, no traffic; ``--write-results`` puts the table in bench/RESULTS.md.

Under ``ab -n 20000 -c 50`` every connection costs the watcher, with the tracepoint,
about ten ``inet_sock_set_state`` records (five per end) that become ten events written
as JSON lines, and two destroy messages (one per end) received and decoded. This times
those steps on this machine twice over:

- *sockscope*: the project's own functions (``decode_page``, ``render_event_json``,
  ``endpoint_from_destroy_msg``) on the recorded pages of tests/fixtures/ftrace;
- *ideal*: the least CPython can do for the same step, with no bookkeeping at all: walk
  the page and ``unpack_from`` each record, format one line from ready-made strings,
  ``recv_into`` one datagram and unpack its header.

It prints the CPU per connection and the connection rate half a core sustains. Kernel
time (copying pages and messages out, writing the output) and the merging of records
into connections come on top of both: the bench measures them.
"""

from __future__ import annotations

import platform
import socket
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))
from results_file import command_line, replace_section, section_head  # noqa: E402

from sockscope.model.endpoint import Endpoint  # noqa: E402
from sockscope.model.event import Event, EventKind, Source  # noqa: E402
from sockscope.model.states import Proto  # noqa: E402
from sockscope.render.events import render_event_json  # noqa: E402
from sockscope.wire.ftrace import PAGE_DATA, PAGE_HEADER, _walk, decode_page, parse_format  # noqa: E402
from sockscope.wire.inet_diag import INET_DIAG_MSG  # noqa: E402
from sockscope.wire.join import endpoint_from_destroy_msg  # noqa: E402
from sockscope.wire.tcp_info import TCP_INFO  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "ftrace"
RECORDS_PER_CONNECTION = 10  # measured: bench_watch's trace runs, 200k events per 20k connections
DESTROYS_PER_CONNECTION = 2
RATE = 12_500  # ab's connections per second with a watcher running (bench/RESULTS.md)
CORE_SHARE = 0.5
BEGIN, END = "<!-- watch_floor:begin -->", "<!-- watch_floor:end -->"


def per_call(fn: Callable[[], int], seconds: float = 0.5) -> float:
    """Seconds per unit of work, ``fn`` returning how many units one call did."""
    units, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        units += fn()
    return elapsed / units


def receive_cost(message: bytes, rounds: int = 2000) -> float:
    """Seconds per ``recv_into`` of one datagram already queued, as the kernel queues
    each destroy message: the system call, user space's side of it."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    into, spent, n = bytearray(1 << 16), 0.0, 0
    with a, b:
        for _ in range(rounds):
            for _ in range(100):
                b.send(message)
            start = time.perf_counter()
            for _ in range(100):
                a.recv_into(into)
            spent += time.perf_counter() - start
            n += 100
    return spent / n


def destroy_message() -> bytes:
    """A netlink destroy broadcast as the kernel sends it: the message, the protocol
    attribute and a full ``tcp_info``."""
    body = INET_DIAG_MSG.pack(
        2,
        7,
        0,
        0,
        b"\x1f\x90",
        b"\x9c\x40",
        b"\x7f\0\0\x01" + bytes(12),
        b"\x7f\0\0\x01" + bytes(12),
        0,
        1,
        0,
        0,
        0,
        0,
        0,
        0,
    )
    attrs = struct.pack("=HHB3x", 5, 10, 6) + struct.pack("=HH", 4 + TCP_INFO.size, 2) + bytes(TCP_INFO.size)
    return struct.pack("=IHHII", 16 + len(body) + len(attrs), 20, 0, 0, 0) + body + attrs


def main() -> None:
    from _cli import parse  # noqa: PLC0415 - tools/_cli.py, beside this file (run as a script)

    args = parse(__doc__, ("--write-results", "replace this section of bench/RESULTS.md"))
    layout = parse_format((FIXTURES / "format.txt").read_text())
    pages = [
        bytes.fromhex(ln)
        for ln in (FIXTURES / "pages.hex").read_text().splitlines()
        if ln and not ln.startswith("#")
    ]
    records = [r for p in pages for r in decode_page(p, layout).records]
    unpack = layout.record.unpack_from

    def walk_only() -> int:
        n = 0
        for page in pages:
            ts, commit = PAGE_HEADER.unpack_from(page)
            for _ts, data, size in _walk(page, ts, PAGE_DATA + (commit & 0x3FFFFFFF)):
                if size >= layout.size:
                    unpack(page, data)
                    n += 1
        return n

    def decode() -> int:
        return sum(len(decode_page(p, layout).records) for p in pages)

    rec = records[0]
    endpoint = Endpoint(
        Proto.TCP,
        4,
        rec.new_state,
        rec.local_address,
        rec.local_port,
        rec.remote_address,
        rec.remote_port,
        0,
        0,
        None,
        0,
        None,
    )
    event = Event(EventKind.STATE, endpoint, rec.mono, time.time(), Source.TRACE, old_state=rec.old_state)

    def render() -> int:
        render_event_json(event)
        return 1

    parts = (
        '"tcp"',
        "4",
        '"ESTABLISHED"',
        '"127.0.0.1"',
        "8080",
        '"127.0.0.1"',
        "40000",
        "0",
        "0",
        "null",
        "0",
        "null",
        "false",
        "[]",
        '"state"',
        '"trace"',
        '"pid":1,"process":"nginx"',
        '"SYN_SENT"',
    )
    mono, wall = 1234.567891, time.time()

    def line_only() -> int:
        (p, f, s, la, lp, ra, rp, rq, sq, u, i, c, q, o, e, src, actor, old) = parts
        m = f"{mono:.6f}".rstrip("0")
        t = f"{int(wall)}.{round(wall % 1 * 1e6):06d}"
        _ = (
            f'{{"proto":{p},"family":{f},"state":{s},"local_address":{la},"local_port":{lp},'
            f'"remote_address":{ra},"remote_port":{rp},"recv_q":{rq},"send_q":{sq},"uid":{u},'
            f'"inode":{i},"cookie":{c},"queued":{q},"owners":{o},"event":{e},"time":"{t}",'
            f'"mono":{m},"source":{src},{actor},"old_state":{old}}}'
        )
        return 1

    message = destroy_message()
    buf = bytearray(message)

    def destroy_decode() -> int:
        endpoint_from_destroy_msg(buf, 16, len(buf), {})
        return 1

    def destroy_header_only() -> int:
        INET_DIAG_MSG.unpack_from(buf, 16)
        return 1

    recv_cost = receive_cost(message)

    rows = {
        "sockscope": (per_call(decode), per_call(render), recv_cost, per_call(destroy_decode)),
        "ideal": (per_call(walk_only), per_call(line_only), recv_cost, per_call(destroy_header_only)),
    }
    lines = [
        f"| {'':10} | record | line | recv | destroy | per connection | at {RATE:,}/s | half a core holds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, (record, line, recv, destroy) in rows.items():
        conn = RECORDS_PER_CONNECTION * (record + line) + DESTROYS_PER_CONNECTION * (recv + destroy + line)
        lines.append(
            f"| {name} | {record * 1e6:.2f} us | {line * 1e6:.2f} us | {recv * 1e6:.2f} us "
            f"| {destroy * 1e6:.2f} us | {conn * 1e6:.1f} us | {conn * RATE:.2f} core "
            f"| {CORE_SHARE / conn:,.0f} conn/s |"
        )
    print("\n".join(lines))
    if args.write_results:
        env = {
            "python": sys.version.split()[0],
            "cpu": platform.processor() or platform.machine(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        }
        section = [
            *section_head(
                BEGIN,
                "The CPU floor of `watch`'s unavoidable work (no peer: a bound, not a target check)",
                command_line("tools/watch_floor.py", None),
                env,
            ),
            f"Per connection under ab: {RECORDS_PER_CONNECTION} tracepoint records, each an "
            f"event written as a JSON line, and {DESTROYS_PER_CONNECTION} destroy messages "
            "received, decoded and written. *sockscope*: the project's own decoders and "
            "renderer; *ideal*: the least CPython does for the same step (unpack a record, "
            "format a line from ready-made strings, recv a datagram and unpack its header). "
            "User space only: merging records into connections, filtering, and the kernel's "
            "side (copying pages and messages, writing the output) come on top of both.",
            "",
            *lines,
            END,
        ]
        replace_section(BEGIN, END, "\n".join(section) + "\n")


if __name__ == "__main__":
    main()
