"""Pure: just enough of the TELNET protocol (RFC 854, 855) for a real ``telnet`` client.

The server stays in the Network Virtual Terminal's default mode: it refuses every option
(``DO x`` gets ``WONT x``, ``WILL x`` gets ``DONT x``) and never asks for one, so the
client keeps its local line editing and echo. A refusal is never answered (``DONT``,
``WONT``): RFC 854 forbids acknowledging a request to enter a mode one is already in,
which is what keeps two parties from looping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, auto

IAC, DONT, DO, WONT, WILL, SB = 255, 254, 253, 252, 251, 250
GA, EL, EC, AYT, AO, IP, BRK, DM, NOP, SE = 249, 248, 247, 246, 245, 244, 243, 242, 241, 240
VERBS = {DO: "DO", DONT: "DONT", WILL: "WILL", WONT: "WONT"}
# The client's interrupt keys: each cancels a running download.
INTERRUPTS = frozenset({IP, BRK, AO})
OPTION_NAMES = {
    0: "BINARY",
    1: "ECHO",
    3: "SUPPRESS-GO-AHEAD",
    5: "STATUS",
    6: "TIMING-MARK",
    24: "TERMINAL-TYPE",
    31: "NAWS",
    32: "TERMINAL-SPEED",
    33: "TOGGLE-FLOW-CONTROL",
    34: "LINEMODE",
    35: "X-DISPLAY-LOCATION",
    36: "OLD-ENVIRON",
    37: "AUTHENTICATION",
    38: "ENCRYPT",
    39: "NEW-ENVIRON",
}
BS, DEL, NAK = 0x08, 0x7F, 0x15  # erase a character (^H, DEL), erase the line (^U)
CR, LF, NUL = 0x0D, 0x0A, 0x00


def option_name(option: int) -> str:
    """``3`` -> ``SUPPRESS-GO-AHEAD``; unknown options by number."""
    return OPTION_NAMES.get(option, str(option))


class _State(Enum):
    DATA = auto()
    IAC = auto()  # after IAC
    OPTION = auto()  # after IAC DO/DONT/WILL/WONT: the option byte comes next
    SUB = auto()  # inside IAC SB ... IAC SE (ignored)
    SUB_IAC = auto()  # IAC inside a subnegotiation


@dataclass
class Decoded:
    """What one chunk of input held."""

    data: bytes = b""  # the user's bytes, commands removed, IAC IAC unescaped
    reply: bytes = b""  # what to send back (refusals, "are you there" answers)
    received: list[tuple[str, int]] = field(default_factory=list)  # ("DO", 3)...
    interrupted: bool = False  # IAC IP, BRK or AO arrived


class TelnetDecoder:
    """Separates TELNET commands from data in a byte stream, across chunk boundaries."""

    def __init__(self) -> None:
        self._state = _State.DATA
        self._verb = 0

    def feed(self, chunk: bytes) -> Decoded:
        """Decode ``chunk``; a command split across chunks is finished by the next call."""
        out = Decoded()
        data = bytearray()
        reply = bytearray()
        for byte in chunk:
            if self._state is _State.DATA:
                if byte == IAC:
                    self._state = _State.IAC
                else:
                    data.append(byte)
            elif self._state is _State.IAC:
                self._command(byte, data, reply, out)
            elif self._state is _State.OPTION:
                out.received.append((VERBS[self._verb], byte))
                reply += _refusal(self._verb, byte)
                self._state = _State.DATA
            elif self._state is _State.SUB:
                if byte == IAC:
                    self._state = _State.SUB_IAC
            else:  # SUB_IAC: IAC SE ends it, IAC IAC is an escaped 255 inside it
                self._state = _State.DATA if byte == SE else _State.SUB
        out.data, out.reply = bytes(data), bytes(reply)
        return out

    def _command(self, byte: int, data: bytearray, reply: bytearray, out: Decoded) -> None:
        self._state = _State.DATA
        if byte == IAC:
            data.append(IAC)
        elif byte in VERBS:
            self._verb, self._state = byte, _State.OPTION
        elif byte == SB:
            self._state = _State.SUB
        elif byte == EC:
            data.append(BS)
        elif byte == EL:
            data.append(NAK)
        elif byte == AYT:
            reply += b"\r\n[sockscope demo: yes, here]\r\n"
        elif byte in INTERRUPTS:
            out.interrupted = True
        # NOP, DM, GA, a stray SE or an undefined byte: nothing to do.


def _refusal(verb: int, option: int) -> bytes:
    if verb == DO:
        return bytes((IAC, WONT, option))
    if verb == WILL:
        return bytes((IAC, DONT, option))
    return b""  # DONT/WONT: we are already there; answering would start a loop


@dataclass(frozen=True)
class Line:
    """One input line, or the news that a line went over the limit (its text dropped)."""

    text: bytes
    too_long: bool = False


class LineAssembler:
    """NVT lines: CR LF, CR NUL, or a bare LF or CR ends a line; ^H/DEL/^U edit it.

    A line longer than ``limit`` bytes is reported once as ``too_long`` and the rest of
    it, up to its end, is dropped: the buffer never grows past the limit.
    """

    def __init__(self, limit: int = 1024) -> None:
        self.limit = limit
        self._buf = bytearray()
        self._after_cr = False
        self._skipping = False

    def feed(self, data: bytes) -> list[Line]:
        """Lines completed by ``data``, in order."""
        lines: list[Line] = []
        for byte in data:
            if self._after_cr:
                self._after_cr = False
                if byte in (LF, NUL):
                    continue
            if byte in (CR, LF):
                self._after_cr = byte == CR
                if not self._skipping:
                    lines.append(Line(bytes(self._buf)))
                self._buf.clear()
                self._skipping = False
            elif self._skipping:
                continue
            elif byte in (BS, DEL):
                del self._buf[-1:]
            elif byte == NAK:
                self._buf.clear()
            elif len(self._buf) >= self.limit:
                lines.append(Line(b"", too_long=True))
                self._buf.clear()
                self._skipping = True
            else:
                self._buf.append(byte)
        return lines


def nvt_text(text: str) -> bytes:
    """Text for the wire: every line ending CR LF; ASCII only (else ``?``), so no IAC."""
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("ascii", "replace")


def printable(line: bytes) -> str:
    """A line as text to parse or echo back: control and non-ASCII bytes as ``?``."""
    return "".join(chr(b) if 32 <= b < 127 else "?" for b in line)
