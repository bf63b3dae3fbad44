"""Steps 4 and 5 of the tour: the connection request queue fills, then the application
takes one connection off it.

The half-open state needs a race the kernel runs for us: while the queue is full, new
SYNs are dropped and their clients retransmit. When the application accept()s one
connection, the clients' retransmitted SYNs (fired together) all get a SYN-ACK, the first
final ACK fills the freed slot, and the others overflow: with ``tcp_abort_on_overflow=0``
the server drops those ACKs and keeps a SYN_RECV request, while the client already
believes it is connected. In its own namespace the tour makes SYN retransmits come every
second (``tcp_syn_linear_timeouts``) so this shows within seconds.
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass, field

from sockscope.demo.claims import StepResult, explain, header, ports, wait_for
from sockscope.demo.server import ServerConfig, ServerThread
from sockscope.demo.stage import Stage
from sockscope.model.endpoint import Endpoint
from sockscope.model.listener import Listener
from sockscope.model.states import TcpState

BACKLOG = 2
CLIENTS = 6
HALF_OPEN = (TcpState.SYN_RECV, TcpState.NEW_SYN_RECV)


@dataclass
class QueueScene:
    """The server that does not accept, and its clients, shared by steps 4 and 5."""

    server: ServerThread | None = None
    clients: list[socket.socket] = field(default_factory=list)
    accepted: list[tuple[str, int]] = field(default_factory=list)

    def client_ports(self) -> set[int]:
        """Every client's ephemeral port."""
        return {c.getsockname()[1] for c in self.clients}


def _listener(stage: Stage) -> Listener | None:
    return next((x for x in stage.listeners() if x.endpoint.local_port == stage.port), None)


def _client_states(stage: Stage, scene: QueueScene) -> dict[int, TcpState]:
    mine = scene.client_ports()
    return {
        e.local_port: e.state
        for e in stage.endpoints()
        if e.local_port in mine and e.remote_port == stage.port
    }


def step_queue(stage: Stage, scene: QueueScene) -> StepResult:
    """4. A server with backlog 2 that does not accept: the queue fills, clients wait."""
    p = stage.port
    res = header(
        stage, 4, f"A server with listen(backlog={BACKLOG}) that never calls accept(), and {CLIENTS} clients."
    )
    fast = stage.sysctl("net.ipv4.tcp_syn_linear_timeouts", "6")
    scene.server = stage.start_server(ServerConfig(port=p, backlog=BACKLOG, accept=False))
    for _ in range(CLIENTS):
        c = stage.socket()
        c.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            c.connect(("127.0.0.1", p))
        scene.clients.append(c)
    full = wait_for(lambda: _is_full(stage), timeout=10)
    stage.run("queues", "-v", "--bsd")
    explain(
        stage,
        f"Waiting {BACKLOG + 1} = backlog + 1: TCP finished their handshakes, the "
        "application has not accepted them. Drops: SYNs refused while full.",
    )
    stage.run(*_list_t())
    explain(
        stage,
        "ESTABLISHED(queued): no process holds them (inode 0). The other clients "
        "wait in SYN_SENT, retransmitting their SYN.",
    )
    _check_full(res, stage, scene, full)
    _half_open(stage, scene, res, fast)
    return res


def _list_t() -> tuple[str, ...]:
    return ("list", "-t", "-a", "-n", "-f", "inet", "--bsd")


def _is_full(stage: Stage) -> bool:
    lst = _listener(stage)
    return lst is not None and lst.full and (lst.drops or 0) > 0


def _check_full(res: StepResult, stage: Stage, scene: QueueScene, full: bool) -> None:
    lst = _listener(stage)
    states = _client_states(stage, scene)
    waiting = sorted(port for port, st in states.items() if st is TcpState.SYN_SENT)
    res.check(
        f"the queue holds backlog + 1 = {BACKLOG + 1} connections the application has not accepted",
        full
        and lst is not None
        and lst.backlog == BACKLOG
        and lst.accept_queue == BACKLOG + 1
        and len(lst.queued) == BACKLOG + 1
        and all(q.inode == 0 and not q.owners for q in lst.queued),
        f"kernel: Waiting {lst.accept_queue}, Backlog {lst.backlog}, queued from ports "
        f"{ports(q.remote_port for q in lst.queued)}, all inode 0"
        if lst
        else "no listener",
    )
    res.check(
        "the extra clients wait: their SYNs are dropped while the queue is full",
        len(waiting) == CLIENTS - BACKLOG - 1 and lst is not None and (lst.drops or 0) > 0,
        f"clients in SYN_SENT: {ports(waiting)}; listener drops: {lst.drops if lst else None}",
    )


def _half_open(stage: Stage, scene: QueueScene, res: StepResult, fast: bool) -> None:
    p = stage.port
    stage.write(
        "The application makes room: it accept()s one connection. The waiting clients' "
        "retransmitted SYNs race for that one slot.\n\n"
    )
    # Which SYNs win a freed slot is a race; make room again if a burst falls short.
    found: list[tuple[int, Endpoint]] = []

    def look() -> bool:
        hit = _believer(stage, scene)
        if hit is not None:
            found.append(hit)
        return hit is not None

    for _ in range(3):
        if scene.server is not None:
            scene.accepted += scene.server.accept_waiting(1)
        if wait_for(look, timeout=4 if fast else 10):
            break
    seen = found[-1] if found else None
    stage.run("queues", "-v", "--bsd")
    stage.run(*_list_t())
    if seen is not None:
        explain(
            stage,
            f"Client port {seen[0]}: ESTABLISHED on its own line, yet the server's "
            f"line for it is SYN_RECV: its final ACK overflowed the full queue.",
        )
    res.check(
        "a client believes it is connected while the server holds it half-open",
        seen is not None,
        f"client 127.0.0.1:{seen[0]} ESTABLISHED; server 127.0.0.1:{p} <- :{seen[0]} "
        f"{seen[1].state.label(seen[1].proto)}"
        if seen
        else "no client was ESTABLISHED with a SYN_RECV on the server side within the time",
    )


def _believer(stage: Stage, scene: QueueScene) -> tuple[int, Endpoint] | None:
    """A client port that is ESTABLISHED while the server holds it half-open."""
    eps = stage.endpoints()
    mine = scene.client_ports()
    established = {e.local_port for e in eps if e.local_port in mine and e.state is TcpState.ESTABLISHED}
    for e in eps:
        if (
            e.local_port == stage.port
            and e.state in HALF_OPEN
            and e.remote_port is not None
            and e.remote_port in established
        ):
            return e.remote_port, e
    return None


def step_accept(stage: Stage, scene: QueueScene) -> StepResult:
    """5. accept(): one connection moves from the kernel's queue to the application."""
    res = header(
        stage,
        5,
        "The application calls accept() once more. Watch one connection move from "
        "'accepted by TCP' to 'owned by the application'.",
    )
    before = _listener(stage)
    queued_before = {q.remote_port: q for q in before.queued} if before else {}
    stage.run("list", "-t", "-a", "-n", "-f", "inet", "--bsd", "-p")
    peers = scene.server.accept_waiting(1) if scene.server else []
    after_eps = stage.endpoints(processes=True)
    stage.run("list", "-t", "-a", "-n", "-f", "inet", "--bsd", "-p")
    if not peers:
        res.check(
            "accept() takes one connection off the queue", False, "accept() found no connection waiting"
        )
        return res
    port = peers[0][1]
    explain(
        stage,
        f"127.0.0.1.{port} was ESTABLISHED(queued) with no process; accept() gave "
        f"it to the server (pid {os.getpid()}), and it left the queue.",
    )
    stage.run("queues", "-v", "--bsd")
    was = queued_before.get(port)
    res.check(
        "before accept(), the connection waited in the queue: no inode, no process",
        was is not None and was.inode == 0 and not was.owners,
        f"127.0.0.1:{port}: {'inode 0, no owner' if was else 'not in the queue'}; "
        f"queue before: {ports(queued_before)}",
    )
    now = next(
        (
            e
            for e in after_eps
            if e.local_port == stage.port and e.remote_port == port and e.state is TcpState.ESTABLISHED
        ),
        None,
    )
    owners = [f"{o.pid}/{o.name}" for o in now.owners] if now else []
    res.check(
        "after accept(), the same connection is owned by the application",
        now is not None and now.inode != 0 and any(o.pid == os.getpid() for o in now.owners),
        f"127.0.0.1:{port}: inode {now.inode if now else None}, owners {owners}",
    )
    lst = _listener(stage)
    res.check(
        "it is no longer in the listener's queue",
        lst is not None and port not in {q.remote_port for q in lst.queued},
        f"queue now: {ports(q.remote_port for q in lst.queued) if lst else None} "
        f"(a half-open client may have taken the freed slot)",
    )
    return res
