"""Pure: the ``sock:inet_sock_set_state`` program, built for one kernel and one watch.

Offsets and map file descriptors in, instructions out. For every TCP transition of a
watched namespace's socket the program keeps a ``conns`` entry from birth to CLOSE
(start time, owner, namespace: ``maps.py``) and writes records (``records.py``):

- births overwrite whatever entry the address had (a missed CLOSE must not leave a
  reused address an old connection's start): CLOSE->SYN_SENT (``connect``, in the
  process's context: its pid and comm), CLOSE->LISTEN (``listen``, likewise; the
  ``listeners`` map learns the owner) and LISTEN->SYN_RECV (a child the kernel accepted,
  in softirq: named by its listener's owner until its own process acts on it);
- a socket first seen at any other transition existed before the program: its entry
  gets FLAG_MIDLIFE and its start time is only a lower bound;
- the owner is taken again where the socket's own process runs the transition:
  ESTABLISHED->FIN_WAIT1 (close/shutdown first), CLOSE_WAIT->LAST_ACK (close after the
  peer), ->SYN_SENT and ->LISTEN;
- records: CLOSE always (with the tcp_sock counters; the entry is deleted), LISTEN
  always, OPEN and STATE when the watch asked for them. The port spans of the filter
  decide which CLOSE, OPEN and STATE records leave; LISTEN records and the maps are
  never filtered (a listener's owner names the connections it accepts on any port).

Verifier rules the code follows: the context is read only with aligned loads past its
first 8 bytes; map lookups are NULL-checked; every ring reservation is submitted;
kernel memory (the socket) is read only through ``bpf_probe_read_kernel``; stack use is
aligned and initialised before it is passed to a helper; r0 is set before exit.
Registers: r6 the context, r7 the record being filled, r8 the socket's entry (in the
map, or its copy on the stack), r9 the socket's namespace.
"""

from __future__ import annotations

from collections.abc import Sequence

from sockscope._namedtuple import NamedTuple
from sockscope.wire.ebpf import maps as m
from sockscope.wire.ebpf import records as rec
from sockscope.wire.ebpf.asm import BPF_JEQ, BPF_JLE, BPF_JLT, BPF_JNE, BPF_RSH, Helper
from sockscope.wire.ebpf.codegen import (
    ALL_PORTS,
    KEY,
    LKEY,
    R0,
    R1,
    R2,
    R3,
    R6,
    R7,
    R8,
    R9,
    R10,
    SLOT,
    TCP_CLOSE,
    TCP_ESTABLISHED,
    TCP_LISTEN,
    TCP_SYN_RECV,
    TCP_SYN_SENT,
    VAL,
    MapFds,
    Pieces,
)
from sockscope.wire.ebpf.layout import CtxLayout, KernelOffsets

LICENSE = "Dual MIT/GPL"  # bpf_probe_read_kernel is GPL-only: a GPL-compatible string
MAX_PORT_SPANS = 64
IPPROTO_TCP = 6


class ProgramConfig(NamedTuple):
    """What one watch asks of the program."""

    families: frozenset[int] = frozenset({4, 6})
    ports: tuple[tuple[bool, int, int], ...] | None = None  # (local?, lo, hi) spans
    want_open: bool = False
    want_state: bool = False
    ring_bytes: int = 8 << 20


class Program(NamedTuple):
    insns: bytes
    port_filtered: bool  # False: records of every port leave; filter them in user space


def merge_spans(spans: Sequence[tuple[bool, int, int]]) -> list[tuple[bool, int, int]]:
    """The spans sorted, overlapping and touching ones of the same end joined."""
    out: list[tuple[bool, int, int]] = []
    for local, lo, hi in sorted(spans):
        if out and out[-1][0] == local and lo <= out[-1][2] + 1:
            out[-1] = (local, out[-1][1], max(out[-1][2], hi))
        else:
            out.append((local, lo, hi))
    return out


def ports_pass(spans: Sequence[tuple[bool, int, int]], sport: int, dport: int) -> bool:
    """What the program's port test decides, for records user space must judge alike."""
    return any(lo <= (sport if local else dport) <= hi for local, lo, hi in spans)


def build_program(ctx: CtxLayout, off: KernelOffsets, fds: MapFds, config: ProgramConfig) -> Program:
    """The program's instructions for this kernel's layout, these maps and this watch."""
    if not config.families or not config.families <= {4, 6}:
        raise ValueError(f"families must be 4 and/or 6, not {sorted(config.families)}")
    if config.ring_bytes // 4 >= 1 << 31:
        raise ValueError("ring buffer too large for the wake-up threshold")
    spans = merge_spans(config.ports) if config.ports is not None else None
    if spans is not None and len(spans) > MAX_PORT_SPANS:
        spans = None
    builder = _Builder(ctx, off, fds, config, spans)
    return Program(builder.build(), spans is not None)


class _Builder(Pieces):
    """The program's flow: which transition does what, and the records."""

    def __init__(
        self,
        ctx: CtxLayout,
        off: KernelOffsets,
        fds: MapFds,
        config: ProgramConfig,
        spans: list[tuple[bool, int, int]] | None,
    ) -> None:
        super().__init__(ctx, off, fds)
        self.config, self.spans = config, spans

    def build(self) -> bytes:
        self.prologue()
        self.load_config()
        self.lookup_conn()
        self.check_netns()
        self.dispatch()
        self.on_close()
        self.on_connect()
        self.on_child()
        self.on_listen()
        self.on_other()
        self.a.label("out")
        self.a.mov(R0, 0)  # the verifier wants r0 set on every way out
        self.a.exit()
        return self.a.assemble()

    # -- the way in ---------------------------------------------------------------------

    def prologue(self) -> None:
        """Only TCP (MPTCP and SCTP share the tracepoint) of the watched families."""
        a, ctx = self.a, self.ctx
        a.mov(R6, R1)  # the context outlives r1, which the first call clobbers
        a.load(2, R2, R6, ctx.protocol)
        a.jump(BPF_JNE, R2, IPPROTO_TCP, "out")
        if len(self.config.families) == 1:
            (family,) = self.config.families
            a.load(2, R2, R6, ctx.family)
            a.jump(BPF_JNE, R2, m.AF_INET if family == 4 else m.AF_INET6, "out")
        a.load(8, R1, R6, ctx.skaddr)
        a.store(8, R10, KEY, R1)

    def load_config(self) -> None:
        """r9 = the namespace to keep (0: all), and the port switch on the stack: read
        each run so they can change while the program runs."""
        a = self.a
        a.store(4, R10, SLOT, 0)
        self.map_call(Helper.map_lookup_elem, self.fds.config, SLOT)
        a.jump(BPF_JEQ, R0, 0, "out")  # index 0 always exists; the verifier wants the check
        a.load(4, R9, R0, m.CONFIG_NETNS)
        if self.spans is not None:
            a.load(4, R1, R0, m.CONFIG_ALL_PORTS)
            a.store(4, R10, ALL_PORTS, R1)

    def lookup_conn(self) -> None:
        self.map_call(Helper.map_lookup_elem, self.fds.conns, KEY)
        self.a.mov(R8, R0)

    def check_netns(self) -> None:
        """r9 = the socket's namespace; leave if it is not the watched one.

        A known socket's namespace is in its entry (no probe reads). An entry of a
        namespace no longer watched (the config changed) is dropped. Inode numbers pass
        2**31, so they are compared as 32-bit values (JMP32), register to register.
        """
        a = self.a
        a.jump(BPF_JEQ, R8, 0, "ns.unknown")
        a.load(4, R1, R8, m.CONN_NETNS)
        a.jump(BPF_JEQ, R9, 0, "ns.take")
        a.jump32(BPF_JNE, R1, R9, "ns.foreign")
        a.goto("ns.take")
        a.label("ns.foreign")
        self.map_call(Helper.map_delete_elem, self.fds.conns, KEY)
        a.goto("out")
        a.label("ns.unknown")
        self.read_netns()
        a.jump(BPF_JEQ, R9, 0, "ns.take")
        a.jump32(BPF_JNE, R1, R9, "out")
        a.label("ns.take")
        a.mov(R9, R1)

    def dispatch(self) -> None:
        a, ctx = self.a, self.ctx
        a.load(4, R2, R6, ctx.newstate)
        a.jump(BPF_JEQ, R2, TCP_CLOSE, "close")
        a.load(4, R3, R6, ctx.oldstate)
        a.jump(BPF_JNE, R3, TCP_CLOSE, "from.other")
        a.jump(BPF_JEQ, R2, TCP_SYN_SENT, "connect")
        a.jump(BPF_JEQ, R2, TCP_LISTEN, "listen")
        a.goto("other")
        a.label("from.other")
        a.jump(BPF_JNE, R3, TCP_LISTEN, "other")
        a.jump(BPF_JEQ, R2, TCP_SYN_RECV, "child")
        a.goto("other")

    # -- the transitions ----------------------------------------------------------------

    def on_close(self) -> None:
        """->CLOSE: a record with the final counters, then the entry goes."""
        a = self.a
        a.label("close")
        a.jump(BPF_JNE, R8, 0, "close.known")
        self.stat_inc(m.STAT_CLOSE_WITHOUT_ENTRY)  # opened before us, or its entry refused
        self.stack_entry(rec.FLAG_NO_ENTRY, born_now=False)
        self.stack_ptr(R8, VAL)
        a.label("close.known")
        a.load(4, R3, R6, self.ctx.oldstate)
        a.jump(BPF_JNE, R3, TCP_LISTEN, "close.emit")
        self.listener_release()
        a.label("close.emit")
        self.emit(rec.KIND_CLOSE, filtered=True)
        self.map_call(Helper.map_delete_elem, self.fds.conns, KEY)
        a.goto("out")

    def on_connect(self) -> None:
        """CLOSE->SYN_SENT: connect() runs in its process; the owner is the current task."""
        self.a.label("connect")
        self.stack_entry(0, born_now=True)
        self.take_owner(R10, VAL)
        self.insert_conn()
        self.a.goto("out")

    def on_child(self) -> None:
        """LISTEN->SYN_RECV: a child the kernel made in softirq, named by its listener."""
        a = self.a
        a.label("child")
        self.stack_entry(0, born_now=True)
        self.listener_key()
        self.map_call(Helper.map_lookup_elem, self.fds.listeners, LKEY)
        a.jump(BPF_JEQ, R0, 0, "child.insert")
        a.load(4, R1, R0, m.LISTENER_PID)
        a.store(4, R10, VAL + m.CONN_PID, R1)
        self.copy(R10, VAL + m.CONN_COMM, R0, m.LISTENER_COMM, m.COMM_LEN)
        a.store(4, R10, VAL + m.CONN_FLAGS, rec.FLAG_LISTENER)
        a.label("child.insert")
        self.insert_conn()
        a.goto("out")

    def on_listen(self) -> None:
        """CLOSE->LISTEN: listen() runs in its process; its owner names future children."""
        self.a.label("listen")
        self.stack_entry(0, born_now=True)
        self.take_owner(R10, VAL)
        self.insert_conn()
        self.listener_acquire()
        self.stack_ptr(R8, VAL)
        self.emit(rec.KIND_LISTEN, filtered=False)
        self.a.goto("out")

    def on_other(self) -> None:
        """Every other transition: adopt a socket first seen here, maybe take its owner,
        and write OPEN or STATE records if asked."""
        a = self.a
        a.label("other")
        a.jump(BPF_JNE, R8, 0, "other.known")
        self.stack_entry(rec.FLAG_MIDLIFE, born_now=True)
        self.refresh_owner(R10, VAL)
        self.insert_conn()
        self.stack_ptr(R8, VAL)
        a.goto("other.emit")
        a.label("other.known")
        self.refresh_owner(R8, 0)
        a.label("other.emit")
        if self.config.want_open:
            a.load(4, R2, R6, self.ctx.newstate)
            a.jump(BPF_JNE, R2, TCP_ESTABLISHED, "other.state")
            a.load(4, R3, R6, self.ctx.oldstate)
            a.jump(BPF_JEQ, R3, TCP_SYN_SENT, "other.open")
            a.jump(BPF_JNE, R3, TCP_SYN_RECV, "other.state")
            a.label("other.open")
            self.emit(rec.KIND_OPEN, filtered=True)
            a.goto("out")
            a.label("other.state")
        if self.config.want_state:
            self.emit(rec.KIND_STATE, filtered=True)
        a.goto("out")

    # -- records ------------------------------------------------------------------------

    def emit(self, kind: int, *, filtered: bool) -> None:
        """One record of ``kind`` from the entry at r8 and the context, if its ports pass."""
        a, skip, got = self.a, self.a.fresh("emitted"), self.a.fresh("reserved")
        if filtered and self.spans is not None:
            self.port_test(skip)
        a.ld_map_fd(R1, self.fds.rb)
        a.mov(R2, rec.RECORD_SIZE)
        a.mov(R3, 0)
        a.call(Helper.ringbuf_reserve)
        a.mov(R7, R0)
        a.jump(BPF_JNE, R7, 0, got)
        self.stat_inc(m.STAT_RESERVE_FAILED)
        a.goto(skip)
        a.label(got)
        self.fill_entry(kind)
        self.fill_socket()
        self.fill_addresses()
        self.fill_tcp(kind == rec.KIND_CLOSE)
        self.submit(self.config.ring_bytes // 4)
        a.label(skip)

    def port_test(self, fail: str) -> None:
        """Fall through when the local port is in a local span or the remote port in a
        remote span; otherwise jump to ``fail``."""
        a, passed = self.a, self.a.fresh("ports")
        a.load(4, R1, R10, ALL_PORTS)
        a.jump(BPF_JNE, R1, 0, passed)
        a.load(2, R2, R6, self.ctx.sport)
        a.load(2, R3, R6, self.ctx.dport)
        for local, lo, hi in self.spans or ():
            port = R2 if local else R3
            if lo == hi:
                a.jump(BPF_JEQ, port, lo, passed)
                continue
            below = a.fresh("span")
            a.jump(BPF_JLT, port, lo, below)
            a.jump(BPF_JLE, port, hi, passed)
            a.label(below)
        a.goto(fail)
        a.label(passed)

    def fill_entry(self, kind: int) -> None:
        """kind, flags, skaddr, start, now, cookie, pid, netns, comm."""
        a = self.a
        a.store(4, R7, rec.OFF_KIND, kind)
        a.load(4, R1, R8, m.CONN_FLAGS)
        a.store(4, R7, rec.OFF_FLAGS, R1)
        a.load(8, R1, R10, KEY)
        a.store(8, R7, rec.OFF_SKADDR, R1)
        a.load(8, R1, R8, m.CONN_START)
        a.store(8, R7, rec.OFF_START, R1)
        a.call(Helper.ktime_get_ns)  # CLOCK_MONOTONIC, as time.monotonic()
        a.store(8, R7, rec.OFF_TS, R0)
        self.probe_read(R7, rec.OFF_COOKIE, 8, self.off.skc_cookie)
        a.load(4, R1, R8, m.CONN_PID)
        a.store(4, R7, rec.OFF_PID, R1)
        a.store(4, R7, rec.OFF_NETNS, R9)
        self.copy(R7, rec.OFF_COMM, R8, m.CONN_COMM, m.COMM_LEN)

    def fill_socket(self) -> None:
        ctx = self.ctx
        self.ctx_to_record(2, ctx.family, 2, rec.OFF_FAMILY)
        self.ctx_to_record(2, ctx.sport, 2, rec.OFF_SPORT)
        self.ctx_to_record(2, ctx.dport, 2, rec.OFF_DPORT)
        self.ctx_to_record(4, ctx.oldstate, 1, rec.OFF_OLDSTATE)
        self.ctx_to_record(4, ctx.newstate, 1, rec.OFF_NEWSTATE)

    def fill_addresses(self) -> None:
        """16 bytes each; an IPv4 address in the first 4, zeros after."""
        a, ctx, v6, done = self.a, self.ctx, self.a.fresh("v6"), self.a.fresh("addresses")
        a.load(2, R1, R6, ctx.family)
        a.jump(BPF_JEQ, R1, m.AF_INET6, v6)
        for src, dst in ((ctx.saddr, rec.OFF_SADDR), (ctx.daddr, rec.OFF_DADDR)):
            self.copy(R7, dst, R6, src, 4)
            a.store(4, R7, dst + 4, 0)
            a.store(8, R7, dst + 8, 0)
        a.goto(done)
        a.label(v6)
        self.copy(R7, rec.OFF_SADDR, R6, ctx.saddr_v6, 16)
        self.copy(R7, rec.OFF_DADDR, R6, ctx.daddr_v6, 16)
        a.label(done)

    def fill_tcp(self, close: bool) -> None:
        """tcp_sock's counters at CLOSE; zeros on the other kinds."""
        a, off = self.a, self.off
        if not close:
            for at in (rec.OFF_BYTES_SENT, rec.OFF_BYTES_ACKED, rec.OFF_BYTES_RECEIVED, rec.OFF_SRTT):
                a.store(8, R7, at, 0)  # the last one covers srtt_us and total_retrans
            return
        self.probe_read(R7, rec.OFF_BYTES_SENT, 8, off.bytes_sent)
        self.probe_read(R7, rec.OFF_BYTES_ACKED, 8, off.bytes_acked)
        self.probe_read(R7, rec.OFF_BYTES_RECEIVED, 8, off.bytes_received)
        self.probe_read(R7, rec.OFF_SRTT, 4, off.srtt_us)
        self.probe_read(R7, rec.OFF_RETRANS, 4, off.total_retrans)
        a.load(4, R1, R7, rec.OFF_SRTT)
        a.alu(BPF_RSH, R1, 3)  # the kernel keeps 8 times the smoothed RTT
        a.store(4, R7, rec.OFF_SRTT, R1)
