"""``sockscope demo tour``: the primer, step by step, on real sockets.

Each step starts real servers and clients, runs the real sockscope commands on them
(in-process, through ``sockscope.cli.main.main``), shows their output, and checks the
step's claims on the sockets themselves through the library: a ``StepResult`` per step
says what was claimed, whether it held, and the evidence.
"""

from __future__ import annotations

import errno
import functools
import socket
from collections.abc import Callable
from ipaddress import ip_address

from sockscope.demo.claims import STEPS, TITLES, StepResult, explain, header, row
from sockscope.demo.server import ServerConfig
from sockscope.demo.stage import Stage, StageError, abort
from sockscope.demo.tour_queue import QueueScene, step_accept, step_queue
from sockscope.demo.tour_watch import step_watch
from sockscope.model.endpoint import Endpoint
from sockscope.model.states import TcpState

BSD_LIST = ("list", "-a", "-n", "-f", "inet", "--bsd")  # the primer's netstat -a -n -f inet
PROMPT = b"sockscope> "


def run_tour(
    write: Callable[[str], None], pause: Callable[[], None] | None = None, use_netns: bool | None = None
) -> list[StepResult]:
    """Walk through the primer; ``pause`` (if any) runs between steps.

    Raises:
        StageError: the tour's namespace could not be made.
    """
    stage = Stage.open(write, use_netns=use_netns)
    results: list[StepResult] = []

    mark = [0]

    def emit(result: StepResult) -> None:
        result.runs, mark[0] = stage.runs[mark[0] :], len(stage.runs)
        results.append(result)
        _print_claims(write, result)
        if pause is not None and len(results) < STEPS:
            pause()

    def attempt(number: int, step: Callable[[], StepResult]) -> None:
        # A step that breaks (a timeout, a refused connect) fails; the tour goes on.
        try:
            result = step()
        except Exception as exc:  # reported as the step's failure
            result = StepResult(number, TITLES[number])
            result.check("the step ran to its end", False, f"{type(exc).__name__}: {exc}")
        emit(result)

    try:
        _intro(stage)
        for number, step in ((1, step_listen), (2, step_bind), (3, step_connect)):
            with stage.scope():
                attempt(number, functools.partial(step, stage))
        with stage.scope():
            scene = QueueScene()
            attempt(4, lambda: step_queue(stage, scene))
            attempt(5, lambda: step_accept(stage, scene))
        with stage.scope():
            attempt(6, lambda: step_watch(stage))
    finally:
        stage.close()
    _summary(write, results)
    return results


def _intro(stage: Stage) -> None:
    where = (
        f"in a network namespace of its own, {stage.netns}, so only its sockets show"
        if stage.netns
        else f"on loopback in this namespace (no namespace of its own: that needs root), "
        f"filtered to port {stage.port}"
    )
    stage.write(
        f"The primer, live: a telnet-like server on port {stage.port} and its clients, "
        f"{where}.\nEvery command below is the real sockscope on the real sockets.\n"
    )


def _print_claims(write: Callable[[str], None], result: StepResult) -> None:
    if result.skipped:
        write(f"  [skipped] {result.skipped}\n")
    for c in result.claims:
        write(f"  [{'ok' if c.passed else 'FAILED'}] {c.text}\n           {c.evidence}\n")


def _summary(write: Callable[[str], None], results: list[StepResult]) -> None:
    write("\n== Summary ==\n")
    for r in results:
        mark = "skipped" if r.skipped else ("ok" if r.passed else "FAILED")
        write(f"  step {r.number}: {r.title}: {mark}\n")


def greet(stage: Stage, host: str, timeout: float = 5.0) -> socket.socket:
    """A client connected to ``host`` on the tour's port, past the server's banner."""
    sock = stage.socket()
    sock.settimeout(timeout)
    sock.connect((host, stage.port))
    seen = b""
    while PROMPT not in seen:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        seen += chunk
    return sock


def _listener(eps: list[Endpoint], port: int) -> Endpoint | None:
    return next((e for e in eps if e.state is TcpState.LISTEN and e.local_port == port), None)


def step_listen(stage: Stage) -> StepResult:
    """1. The server listens: every interface (``*.2323``), no peer yet (``*.*``)."""
    p = stage.port
    res = header(stage, 1, f"The server binds port {p} on every interface (0.0.0.0) and waits.")
    stage.start_server(ServerConfig(port=p, bind="0.0.0.0"))  # noqa: S104 - every interface
    bsd = stage.run(*BSD_LIST).stdout
    explain(stage, f"*.{p}: it accepts on any local interface. *.*: no peer is known yet.")
    linux = stage.run("list", "-l", "-t", "-n", "-4").stdout
    explain(stage, f"The same in Linux notation: 0.0.0.0:{p}, foreign 0.0.0.0:*.")
    lst = _listener(stage.endpoints(), p)
    res.check(
        "the listener's local address is the wildcard, so it accepts on every interface",
        lst is not None
        and lst.local_address is not None
        and lst.local_address.is_unspecified
        and lst.remote_port is None,
        f"kernel: {lst.local_address}:{lst.local_port} state {lst.state.name}, no peer"
        if lst
        else f"no listener on port {p}",
    )
    line = row(bsd, f"*.{p}", "*.*")
    res.check(
        f"--bsd shows it as *.{p} with foreign address *.*",
        line is not None and "LISTEN" in line,
        f"line: {line!r}",
    )
    line = row(linux, f"0.0.0.0:{p}", "0.0.0.0:*")
    res.check(
        f"Linux notation shows 0.0.0.0:{p} with foreign address 0.0.0.0:*",
        line is not None and "LISTEN" in line,
        f"line: {line!r}",
    )
    return res


def step_bind(stage: Stage) -> StepResult:
    """2. Binding one address: accepted there, refused on the other interface."""
    p = stage.port
    res = header(
        stage,
        2,
        "With several interfaces, a server may bind one address: connections are "
        "then accepted on that one only.",
    )
    if stage.netns is None:
        res.skipped = (
            "needs the tour's own network namespace, where it adds two interfaces: "
            "run as root (and without --no-netns)"
        )
        return res
    try:
        (if_a, addr_a), (if_b, addr_b) = stage.add_interfaces()
    except StageError as exc:
        res.skipped = f"could not add two interfaces here: {exc}"
        return res
    stage.run_ip("-br", "-4", "addr")
    stage.start_server(ServerConfig(port=p, bind=addr_a))
    stage.run(*BSD_LIST)
    explain(stage, f"{addr_a}.{p}, not *.{p}: only connections to {addr_a} ({if_a}) are accepted.")
    good = greet(stage, addr_a)
    refused = _refused(stage, addr_b)
    bsd = stage.run(*BSD_LIST).stdout
    explain(stage, f"The client to {addr_a} is connected; the one to {addr_b} ({if_b}) was refused.")
    eps = stage.endpoints()
    lst = _listener(eps, p)
    line = row(bsd, f"{addr_a}.{p}", "*.*")
    res.check(
        f"the listener is bound to {addr_a} only ({addr_a}.{p} with --bsd, not *.{p})",
        lst is not None and lst.local_address == ip_address(addr_a) and line is not None,
        f"kernel: {lst.local_address if lst else None}:{p}; line: {line!r}",
    )
    here = good.getsockname()
    conn = next((e for e in eps if e.local_port == p and e.remote_port == here[1]), None)
    res.check(
        f"a client connecting to {addr_a}:{p} is accepted",
        conn is not None and conn.state is TcpState.ESTABLISHED,
        f"server side {conn.local_address}:{p} <- {here[0]}:{here[1]} {conn.state.name}"
        if conn
        else "no server-side connection found",
    )
    res.check(
        f"a client connecting to {addr_b}:{p}, the other interface, is refused",
        refused == errno.ECONNREFUSED,
        f"connect() -> {errno.errorcode.get(refused, refused) if refused else 'connected'}"
        " (the kernel answered the SYN with a reset)",
    )
    return res


def _refused(stage: Stage, host: str) -> int:
    """Connect to ``host`` on the tour's port; the errno it failed with, 0 if it connected."""
    sock = stage.socket()
    sock.settimeout(5)
    try:
        sock.connect((host, stage.port))
    except OSError as exc:
        return exc.errno or -1
    return 0


def step_connect(stage: Stage) -> StepResult:
    """3. Clients connect: their own ephemeral ports, the local port stays."""
    p = stage.port
    res = header(stage, 3, f"A client connects to 127.0.0.1:{p}; then a second one.")
    stage.start_server(ServerConfig(port=p))
    first = greet(stage, "127.0.0.1")
    stage.run(*BSD_LIST)
    port1 = first.getsockname()[1]
    explain(
        stage,
        f"Foreign address 127.0.0.1.{port1}: the client's address and the ephemeral "
        f"port its kernel picked; state ESTABLISHED; the local port stays {p}.",
    )
    second = greet(stage, "127.0.0.1")
    bsd = stage.run(*BSD_LIST).stdout
    port2 = second.getsockname()[1]
    explain(
        stage,
        f"The second client has its own ephemeral port, {port2}, on the same "
        f"local port {p}. The listener is still *.{p} *.*.",
    )
    low, high = _port_range(stage)
    eps = stage.endpoints()
    server_side = {e.remote_port: e for e in eps if e.local_port == p and e.remote_port}
    one = server_side.get(port1)
    line = row(bsd, f"127.0.0.1.{p}", f"127.0.0.1.{port1}", "ESTABLISHED")
    res.check(
        f"the foreign address shows the client's IP and port, state ESTABLISHED, local port {p}",
        one is not None and one.state is TcpState.ESTABLISHED and line is not None,
        f"line: {line!r}",
    )
    res.check(
        f"the client's port is ephemeral (in {low}-{high}) while the local port stays {p}",
        low <= port1 <= high and port1 != p,
        f"client port {port1}, server port {one.local_port if one else None}",
    )
    two = server_side.get(port2)
    both = two is not None and two.state is TcpState.ESTABLISHED and port2 != port1
    still = row(bsd, f"*.{p}", "*.*")
    res.check(
        f"a second client gets another ephemeral port on the same local port {p}",
        both and low <= port2 <= high and still is not None,
        f"ports {port1} and {port2}, both ESTABLISHED to :{p}; listener line {still!r}",
    )
    for s in (first, second):
        abort(s)
    return res


def _port_range(stage: Stage) -> tuple[int, int]:
    text = stage.read_sysctl("net.ipv4.ip_local_port_range") or "32768 60999"
    low, high = (int(x) for x in text.split()[:2])
    return low, high
