"""Pure: the pieces the tracepoint program is built from (``program.py`` puts them in
order): map calls, probe reads, counters, and the ``conns`` entry being built.

Each piece is a method that appends instructions to ``self.a``; the register and stack
conventions are ``program.py``'s: r6 the context, r7 the record, r8 the entry, r9 the
socket's namespace, the stack slots below.
"""

from __future__ import annotations

from sockscope._namedtuple import NamedTuple
from sockscope.wire.ebpf import maps as m
from sockscope.wire.ebpf import records as rec
from sockscope.wire.ebpf.asm import (
    BPF_ADD,
    BPF_AND,
    BPF_JEQ,
    BPF_JGT,
    BPF_JLE,
    BPF_JNE,
    BPF_OR,
    BPF_RSH,
    Asm,
    Helper,
    Reg,
    Size,
)
from sockscope.wire.ebpf.layout import CtxLayout, KernelOffsets

R0, R1, R2, R3, R4, R6, R7, R8, R9, R10 = (
    Reg.R0, Reg.R1, Reg.R2, Reg.R3, Reg.R4, Reg.R6, Reg.R7, Reg.R8, Reg.R9, Reg.R10,
)  # fmt: skip
WIDTHS: tuple[Size, ...] = (8, 4, 2, 1)

BPF_ANY = 0
BPF_RB_NO_WAKEUP = 1 << 0
BPF_RB_FORCE_WAKEUP = 1 << 1
BPF_RB_AVAIL_DATA = 0
# include/net/tcp_states.h
TCP_ESTABLISHED, TCP_SYN_SENT, TCP_SYN_RECV, TCP_FIN_WAIT1 = 1, 2, 3, 4
TCP_CLOSE, TCP_CLOSE_WAIT, TCP_LAST_ACK, TCP_LISTEN = 7, 8, 9, 10

# The stack frame (r10-relative), 8-byte aligned slots.
KEY = -8  # u64 skaddr: the conns key
TMP = -16  # probe-read scratch
LKEY = -24  # listeners key
SLOT = -32  # u32 key of the config and stats arrays
ALL_PORTS = -28  # u32 copy of config.all_ports
VAL = -72  # a conns value being built (40 bytes)
LVAL = -96  # a listeners value being built (24 bytes)


class MapFds(NamedTuple):
    conns: int
    listeners: int
    rb: int
    stats: int
    config: int


class Pieces:
    """The instructions' building blocks, on one assembler."""

    def __init__(self, ctx: CtxLayout, off: KernelOffsets, fds: MapFds) -> None:
        self.a, self.ctx, self.off, self.fds = Asm(), ctx, off, fds

    # -- small pieces ------------------------------------------------------------------

    def stack_ptr(self, reg: Reg, slot: int) -> None:
        self.a.mov(reg, R10)
        self.a.alu(BPF_ADD, reg, slot)

    def map_call(self, helper: Helper, fd: int, key: int, value: int | None = None) -> None:
        """helper(map, &stack[key][, &stack[value], BPF_ANY])."""
        self.a.ld_map_fd(R1, fd)
        self.stack_ptr(R2, key)
        if value is not None:
            self.stack_ptr(R3, value)
            self.a.mov(R4, BPF_ANY)
        self.a.call(helper)

    def probe_read(self, base: Reg, dst: int, size: int, member: int) -> None:
        """base[dst..dst+size) = the socket's bytes at ``member`` (zeros if unreadable)."""
        self.a.mov(R1, base)
        self.a.alu(BPF_ADD, R1, dst)
        self.a.mov(R2, size)
        self.a.load(8, R3, R10, KEY)
        self.a.alu(BPF_ADD, R3, member)
        self.a.call(Helper.probe_read_kernel)

    def stat_inc(self, index: int) -> None:
        """stats[index] += 1 on this CPU; atomic, as an interrupt may run us here too."""
        skip = self.a.fresh("stat")
        self.a.store(4, R10, SLOT, index)
        self.map_call(Helper.map_lookup_elem, self.fds.stats, SLOT)
        self.a.jump(BPF_JEQ, R0, 0, skip)
        self.a.mov(R1, 1)
        self.a.atomic_add(8, R0, 0, R1)
        self.a.label(skip)

    def copy(self, dst: Reg, dst_off: int, src: Reg, src_off: int, size: int) -> None:
        """size bytes, in the widest loads both offsets' alignment allows."""
        done = 0
        while done < size:
            at, left = (src_off + done, dst_off + done), size - done
            step = next(w for w in WIDTHS if w <= left and at[0] % w == 0 and at[1] % w == 0)
            self.a.load(step, R1, src, src_off + done)
            self.a.store(step, dst, dst_off + done, R1)
            done += step

    def ctx_to_record(self, load: Size, ctx_off: int, store: Size, rec_off: int) -> None:
        """record[rec_off] = a context field (narrowed by the store when smaller)."""
        self.a.load(load, R1, R6, ctx_off)
        self.a.store(store, R7, rec_off, R1)

    # -- entries ------------------------------------------------------------------------

    def stack_entry(self, flags: int, *, born_now: bool) -> None:
        """A conns value at VAL: start now (or 0), no owner yet, this namespace."""
        a = self.a
        if born_now:
            a.call(Helper.ktime_get_ns)
            a.store(8, R10, VAL + m.CONN_START, R0)
        else:
            a.store(8, R10, VAL + m.CONN_START, 0)
        a.store(4, R10, VAL + m.CONN_PID, 0)
        a.store(4, R10, VAL + m.CONN_FLAGS, flags)
        a.store(8, R10, VAL + m.CONN_COMM, 0)
        a.store(8, R10, VAL + m.CONN_COMM + 8, 0)
        a.store(4, R10, VAL + m.CONN_NETNS, R9)
        a.store(4, R10, VAL + m.CONN_NETNS + 4, 0)

    def take_owner(self, base: Reg, at: int) -> None:
        """The running task owns the entry at base+at: a transition in its own context."""
        a = self.a
        a.call(Helper.get_current_pid_tgid)
        a.alu(BPF_RSH, R0, 32)  # the thread group id: what ps calls the pid
        a.store(4, base, at + m.CONN_PID, R0)
        a.load(4, R1, base, at + m.CONN_FLAGS)
        a.alu(BPF_AND, R1, ~rec.FLAG_LISTENER)
        a.alu(BPF_OR, R1, rec.FLAG_PID)
        a.store(4, base, at + m.CONN_FLAGS, R1)
        a.mov(R1, base)
        a.alu(BPF_ADD, R1, at + m.CONN_COMM)
        a.mov(R2, m.COMM_LEN)
        a.call(Helper.get_current_comm)

    def refresh_owner(self, base: Reg, at: int) -> None:
        """take_owner at the transitions only the socket's own process makes."""
        a, take, skip, last_ack = self.a, self.a.fresh("own"), self.a.fresh("keep"), self.a.fresh("lastack")
        a.load(4, R2, R6, self.ctx.newstate)
        a.load(4, R3, R6, self.ctx.oldstate)
        a.jump(BPF_JEQ, R2, TCP_SYN_SENT, take)
        a.jump(BPF_JEQ, R2, TCP_LISTEN, take)
        a.jump(BPF_JNE, R2, TCP_FIN_WAIT1, last_ack)
        a.jump(BPF_JEQ, R3, TCP_ESTABLISHED, take)
        a.goto(skip)
        a.label(last_ack)
        a.jump(BPF_JNE, R2, TCP_LAST_ACK, skip)
        a.jump(BPF_JNE, R3, TCP_CLOSE_WAIT, skip)
        a.label(take)
        self.take_owner(base, at)
        a.label(skip)

    def insert_conn(self) -> None:
        """conns[skaddr] = the value at VAL, replacing any stale entry; count a refusal."""
        ok = self.a.fresh("inserted")
        self.map_call(Helper.map_update_elem, self.fds.conns, KEY, VAL)
        self.a.jump(BPF_JEQ, R0, 0, ok)
        self.stat_inc(m.STAT_MAP_FULL)
        self.a.label(ok)

    def listener_key(self) -> None:
        self.a.store(4, R10, LKEY, R9)
        self.a.load(2, R1, R6, self.ctx.sport)
        self.a.store(2, R10, LKEY + 4, R1)
        self.a.load(2, R1, R6, self.ctx.family)
        self.a.store(2, R10, LKEY + 6, R1)

    def read_netns(self) -> None:
        """r1 = sk->__sk_common.skc_net.net->ns.inum: two reads, a pointer then a u32."""
        self.probe_read(R10, TMP, 8, self.off.skc_net)
        self.a.mov(R1, R10)
        self.a.alu(BPF_ADD, R1, TMP)
        self.a.mov(R2, 4)
        self.a.load(8, R3, R10, TMP)
        self.a.alu(BPF_ADD, R3, self.off.ns_inum)
        self.a.call(Helper.probe_read_kernel)
        self.a.load(4, R1, R10, TMP)

    def listener_acquire(self) -> None:
        """listeners[netns, port, family]: owner of the newest listener, sharers counted
        (SO_REUSEPORT groups, or a v4 and a v6 socket of one server)."""
        a = self.a
        self.listener_key()
        self.map_call(Helper.map_lookup_elem, self.fds.listeners, LKEY)
        a.jump(BPF_JEQ, R0, 0, "listen.new")
        a.mov(R1, 1)
        a.atomic_add(4, R0, m.LISTENER_COUNT, R1)
        a.load(4, R1, R10, VAL + m.CONN_PID)
        a.store(4, R0, m.LISTENER_PID, R1)
        self.copy(R0, m.LISTENER_COMM, R10, VAL + m.CONN_COMM, m.COMM_LEN)
        a.goto("listen.done")
        a.label("listen.new")
        a.load(4, R1, R10, VAL + m.CONN_PID)
        a.store(4, R10, LVAL + m.LISTENER_PID, R1)
        a.store(4, R10, LVAL + m.LISTENER_COUNT, 1)
        self.copy(R10, LVAL + m.LISTENER_COMM, R10, VAL + m.CONN_COMM, m.COMM_LEN)
        self.map_call(Helper.map_update_elem, self.fds.listeners, LKEY, LVAL)
        a.jump(BPF_JEQ, R0, 0, "listen.done")
        self.stat_inc(m.STAT_LISTENER_MAP_FULL)
        a.label("listen.done")

    def listener_release(self) -> None:
        """A listener closed: one sharer fewer; the last one takes the entry with it."""
        a = self.a
        self.listener_key()
        self.map_call(Helper.map_lookup_elem, self.fds.listeners, LKEY)
        a.jump(BPF_JEQ, R0, 0, "unlisten.done")
        a.load(4, R1, R0, m.LISTENER_COUNT)
        a.jump(BPF_JGT, R1, 1, "unlisten.dec")
        self.map_call(Helper.map_delete_elem, self.fds.listeners, LKEY)
        a.goto("unlisten.done")
        a.label("unlisten.dec")
        a.mov(R1, -1)
        a.atomic_add(4, R0, m.LISTENER_COUNT, R1)
        a.label("unlisten.done")

    def submit(self, wake_above: int) -> None:
        """Without a wake-up (the reader polls), unless the ring is a quarter full."""
        a, chosen = self.a, self.a.fresh("wakeup")
        a.ld_map_fd(R1, self.fds.rb)
        a.mov(R2, BPF_RB_AVAIL_DATA)
        a.call(Helper.ringbuf_query)
        a.mov(R2, BPF_RB_NO_WAKEUP)
        a.jump(BPF_JLE, R0, wake_above, chosen)
        a.mov(R2, BPF_RB_FORCE_WAKEUP)
        a.label(chosen)
        a.mov(R1, R7)
        a.call(Helper.ringbuf_submit)
