"""Where the tour runs: a network namespace of its own (root), or loopback here.

In its own namespace the tour's listings hold only its own sockets, and it may tune the
namespace (faster SYN retransmits) and add interfaces without touching the host. Without
root it shares this namespace, so each command is filtered to the tour's port. Whatever
the stage starts it also stops, and the namespace is deleted, also after Ctrl-C.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import shutil
import socket
import struct
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from sockscope import api
from sockscope.cli.env import Env
from sockscope.cli.status import ExitStatus
from sockscope.demo.server import DemoServer, ServerConfig, ServerThread, open_listener
from sockscope.model.endpoint import Endpoint
from sockscope.model.listener import Listener
from sockscope.model.states import Proto
from sockscope.query.pushdown import pushdown
from sockscope.sources.netns import entered_netns

TOUR_PORT = 2323
IP_TIMEOUT = 10.0
# The two interfaces of step 2: one address each, on either end of a veth pair.
IFACES = (("sockscope0", "10.23.0.1/24"), ("sockscope1", "10.23.1.1/24"))


class StageError(Exception):
    """The stage could not be set up (a namespace, an interface)."""


@dataclass
class CommandRun:
    """One sockscope command the tour ran in-process, with its real output."""

    argv: list[str]
    code: int
    stdout: str
    stderr: str

    @property
    def shown(self) -> str:
        """The command line as a person would type it."""
        return "sockscope " + " ".join(_quote(a) for a in self.argv)


def _quote(arg: str) -> str:
    return f"'{arg}'" if any(c in arg for c in " *{}()") else arg


def can_make_namespaces() -> bool:
    """Root with ``ip`` at hand."""
    return os.geteuid() == 0 and shutil.which("ip") is not None


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT, check=False)
    if done.returncode != 0:
        raise StageError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")


class _Tee(io.StringIO):
    """Keeps what is written and passes it on at once."""

    def __init__(self, write: Callable[[str], None]) -> None:
        super().__init__()
        self._pass_on = write

    def write(self, text: str) -> int:
        self._pass_on(text)
        return super().write(text)


@dataclass
class Stage:
    """The tour's sockets, servers, namespace and output, torn down by ``close()``."""

    write: Callable[[str], None]
    netns: str | None = None
    port: int = TOUR_PORT
    runs: list[CommandRun] = field(default_factory=list)
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    _scopes: list[contextlib.ExitStack] = field(default_factory=list)

    @classmethod
    def open(cls, write: Callable[[str], None], *, use_netns: bool | None = None) -> Stage:
        """A namespace when root (unless ``use_netns`` is False), else loopback here."""
        if use_netns is None:
            use_netns = can_make_namespaces()
        stage = cls(write)
        if use_netns:
            stage.netns = f"sockscope-tour-{os.getpid()}-{secrets.token_hex(3)}"
            _ip("netns", "add", stage.netns)
            stage.stack.callback(_ip_quiet, "netns", "del", stage.netns)
            try:
                _ip("-n", stage.netns, "link", "set", "lo", "up")
            except BaseException:
                stage.close()
                raise
        else:
            stage.port = _free_port(TOUR_PORT)
        return stage

    def close(self) -> None:
        """Stop everything, close every socket, delete the namespace."""
        self.stack.close()

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """What the body starts (servers, sockets) is stopped when the body ends."""
        inner = contextlib.ExitStack()
        self._scopes.append(inner)
        try:
            with inner:
                yield
        finally:
            self._scopes.pop()

    def defer(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` when the current scope (else the stage) ends."""
        (self._scopes[-1] if self._scopes else self.stack).callback(callback)

    # -- sockets and servers -------------------------------------------------------

    def socket(self, family: int = socket.AF_INET) -> socket.socket:
        """A TCP socket in the stage's namespace, closed with the stage."""
        with entered_netns(self.netns):
            sock = socket.socket(family, socket.SOCK_STREAM)
        self.defer(lambda: abort(sock))
        return sock

    def start_server(self, config: ServerConfig) -> ServerThread:
        """A demo server listening in the stage's namespace; stop it or the stage does."""
        with entered_netns(self.netns):
            sock = open_listener(config.bind, config.port, config.backlog)
        thread = ServerThread(DemoServer(config, sock)).start()
        self.defer(thread.stop)
        return thread

    @contextlib.contextmanager
    def inside(self) -> Iterator[None]:
        """Run the body (in this thread) inside the stage's namespace."""
        with entered_netns(self.netns):
            yield

    def sysctl(self, name: str, value: str) -> bool:
        """Set a sysctl in the stage's own namespace; never on the host. True if set."""
        if self.netns is None:
            return False
        path = "/proc/sys/" + name.replace(".", "/")
        with entered_netns(self.netns), contextlib.suppress(OSError), open(path, "w") as f:
            f.write(value)
            return True
        return False

    def read_sysctl(self, name: str) -> str | None:
        """A sysctl's value as the stage's namespace sees it."""
        path = "/proc/sys/" + name.replace(".", "/")
        with entered_netns(self.netns), contextlib.suppress(OSError), open(path) as f:
            return f.read().strip()
        return None

    def add_interfaces(self) -> list[tuple[str, str]]:
        """Two interfaces with one address each (a veth pair); [(name, address)...].

        Raises:
            StageError: no namespace, or the kernel has no veth.
        """
        if self.netns is None:
            raise StageError("adding interfaces needs the tour's own namespace (root)")
        (a, addr_a), (b, addr_b) = IFACES
        _ip("-n", self.netns, "link", "add", a, "type", "veth", "peer", "name", b)
        for name, addr in IFACES:
            _ip("-n", self.netns, "addr", "add", addr, "dev", name)
            _ip("-n", self.netns, "link", "set", name, "up")
        return [(a, addr_a.split("/")[0]), (b, addr_b.split("/")[0])]

    # -- reading ------------------------------------------------------------------

    def _query(self, processes: bool = False, tcp_info: bool = False) -> api.Query:
        kernel = api.KernelFilter()
        if self.netns is None:  # a shared namespace may hold many sockets: filter in the kernel
            from sockscope.model.filter import parse_filter  # noqa: PLC0415

            kernel = api.KernelFilter(bytecode=pushdown(parse_filter(f"port == {self.port}")).bytecode)
        return api.Query(
            protocols=(Proto.TCP,), kernel=kernel, processes=processes, tcp_info=tcp_info, netns=self.netns
        )

    def endpoints(self, *, processes: bool = False, tcp_info: bool = False) -> list[Endpoint]:
        """Every TCP endpoint in the stage (on its port, in loopback mode)."""
        snap = api.run_query(self._query(processes, tcp_info))
        return [
            e for e in snap.endpoints if self.netns is not None or self.port in (e.local_port, e.remote_port)
        ]

    def listeners(self) -> list[Listener]:
        """Every listener with its queue (on the stage's port, in loopback mode)."""
        return [
            x
            for x in api.queue_report(self._query()).listeners
            if x.endpoint.local_port == self.port or self.netns is not None
        ]

    # -- output --------------------------------------------------------------------

    def run(self, *argv: str, show: bool = True, scoped: bool = True) -> CommandRun:
        """Run ``sockscope ARGV`` in-process on the stage; print it and its real output.

        ``scoped`` commands look at the stage's sockets only (its namespace, or its port).
        """
        from sockscope.cli.main import main  # noqa: PLC0415 - the CLI imports the demo

        full = list(argv)
        if not scoped:
            pass
        elif self.netns is not None:
            full += ["--netns", self.netns]
        else:  # this namespace is shared: show only the tour's own port
            full += ["-F", f"{'lport' if argv[0] == 'queues' else 'port'} == {self.port}"]
        out, err = io.StringIO(), io.StringIO()
        code = main(full, Env(stdout=out, stderr=err))
        if code == ExitStatus.INTERRUPTED:  # main() turns Ctrl-C into a status: pass it on
            raise KeyboardInterrupt
        done = CommandRun(full, code, out.getvalue(), err.getvalue())
        self.runs.append(done)
        if show:
            self.write(f"$ {done.shown}\n{done.stdout}{done.stderr}")
        return done

    def run_live(self, *argv: str) -> CommandRun:
        """Like ``run``, but the output appears as the command writes it (``watch``)."""
        from sockscope.cli.main import main  # noqa: PLC0415 - the CLI imports the demo

        full = [*argv, *(["--netns", self.netns] if self.netns is not None else [])]
        self.write(f"$ sockscope {' '.join(_quote(a) for a in full)}\n")
        out, err = _Tee(self.write), io.StringIO()
        code = main(full, Env(stdout=out, stderr=err))
        if code == ExitStatus.INTERRUPTED:
            raise KeyboardInterrupt
        done = CommandRun(full, code, out.getvalue(), err.getvalue())
        self.runs.append(done)
        return done

    def run_ip(self, *args: str) -> str:
        """Show ``ip ARGS`` in the namespace, as a person would type it."""
        if self.netns is None:
            return ""
        done = subprocess.run(
            ["ip", "-n", self.netns, *args], capture_output=True, text=True, timeout=IP_TIMEOUT, check=False
        )
        self.write(f"$ ip -n {self.netns} {' '.join(args)}\n{done.stdout}{done.stderr}")
        return done.stdout


def _ip_quiet(*args: str) -> None:
    with contextlib.suppress(StageError, OSError, subprocess.SubprocessError):
        _ip(*args)


def _free_port(preferred: int) -> int:
    """``preferred`` if nothing uses it on loopback, else a free port the kernel picks."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", preferred))  # noqa: S104 - the tour listens on every interface
        except OSError:
            probe.bind(("0.0.0.0", 0))  # noqa: S104
        return int(probe.getsockname()[1])


def abort(sock: socket.socket) -> None:
    """Close with a reset (SO_LINGER 0): the next step's listing starts clean, no TIME_WAIT."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
