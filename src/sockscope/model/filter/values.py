"""Pure: turns a value word into a typed value for a field's kind, or a FilterError.

Service and user names are resolved through callables the caller injects (the CLI
passes ``sources.names``), so this module performs no lookups of its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_network

from sockscope.model.fields import Kind
from sockscope.model.filter.ast import Network, Number, Range
from sockscope.model.filter.errors import FilterError, did_you_mean
from sockscope.model.states import STATE_NAMES, Proto, TcpState

Resolver = Callable[[str], int | None]
PORT_MAX = 65535

#: ss spells two states differently from ``STATE_NAMES``.
EXTRA_STATE_NAMES: dict[str, frozenset[TcpState]] = {
    "listening": frozenset({TcpState.LISTEN}),
    "closed": frozenset({TcpState.CLOSE}),
}
STATES_BY_NAME = {**STATE_NAMES, **EXTRA_STATE_NAMES}
FAMILY_NAMES = {
    "4": 4,
    "6": 6,
    "0": 0,
    "inet": 4,
    "inet6": 6,
    "ipv4": 4,
    "ipv6": 6,
    "ip": 4,
    "ip4": 4,
    "ip6": 6,
    "unix": 0,
    "local": 0,
}
PROTO_NAMES = {p.value: p.value for p in Proto}

SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "ki": 2**10,
    "kib": 2**10,
    "mi": 2**20,
    "mib": 2**20,
    "gi": 2**30,
    "gib": 2**30,
    "ti": 2**40,
    "tib": 2**40,
}
DURATION_UNITS = {
    "": 1.0,
    "s": 1.0,
    "sec": 1.0,
    "ms": 1e-3,
    "us": 1e-6,
    "µs": 1e-6,
    "ns": 1e-9,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
}
_NUMBER_UNIT = re.compile(r"([0-9]{1,20}(?:\.[0-9]{1,20})?)([a-zA-Zµ]*)")
_MAPPED = IPv6Network("::ffff:0:0/96")
#: Longer digit strings are refused before ``int()`` sees them (and its 4300-digit limit).
MAX_DIGITS = 20


def _digits(text: str) -> bool:
    return 0 < len(text) <= MAX_DIGITS and text.isascii() and text.isdigit()


@dataclass(frozen=True, slots=True)
class Word:
    """A value as written: its text and where it starts in the expression."""

    text: str
    start: int


class ValueParser:
    """Parses values for one expression; holds the text (for errors) and the resolvers."""

    def __init__(
        self, expression: str, resolve_service: Resolver | None, resolve_user: Resolver | None
    ) -> None:
        self.expression = expression
        self.resolve_service = resolve_service
        self.resolve_user = resolve_user

    def error(self, message: str, word: Word) -> FilterError:
        return FilterError(message, word.start, self.expression)

    # -- numbers -------------------------------------------------------------------

    def number(self, kind: Kind, word: Word) -> Number:
        """One number for a numeric kind (port, integer, size, duration, user)."""
        if kind is Kind.PORT:
            return self.port(word)
        if kind is Kind.USER:
            return self.user(word)
        if kind is Kind.SIZE:
            return self._with_unit(word, SIZE_UNITS, "a size (e.g. 4096, 10kB, 1MiB)")
        if kind is Kind.DURATION:
            return float(self._with_unit(word, DURATION_UNITS, "a duration (e.g. 5s, 200ms)"))
        return self.integer(word, "an integer")

    def integer(self, word: Word, what: str) -> int:
        text = word.text.lower()
        if len(text) <= MAX_DIGITS:
            if text.startswith("0x") and len(text) > 2:
                try:
                    return int(text[2:], 16)
                except ValueError:
                    pass
            elif _digits(text):
                return int(text)
        raise self.error(f"'{word.text}' is not {what}", word)

    def _with_unit(self, word: Word, units: Mapping[str, float], what: str) -> Number:
        m = _NUMBER_UNIT.fullmatch(word.text)
        unit = m.group(2).lower() if m else ""
        if m is None or unit not in units:
            hint = did_you_mean(unit, units) if m else ""
            raise self.error(f"'{word.text}' is not {what}{hint}", word)
        value = float(m.group(1)) * units[unit]
        return int(value) if value.is_integer() and units is SIZE_UNITS else value

    def port(self, word: Word) -> int:
        """A port number or service name; ss's ``:port`` spelling is accepted."""
        text = word.text[1:] if word.text.startswith(":") else word.text
        if _digits(text):
            value = int(text)
            if value > PORT_MAX:
                raise self.error(f"port {value} is out of range (0..{PORT_MAX})", word)
            return value
        if text and self.resolve_service is not None:
            found = self.resolve_service(text)
            if found is not None and 0 <= found <= PORT_MAX:
                return found
        raise self.error(f"'{word.text}' is not a port number or a known service name", word)

    def user(self, word: Word) -> int:
        if _digits(word.text):
            return int(word.text)
        if word.text and self.resolve_user is not None:
            found = self.resolve_user(word.text)
            if found is not None:
                return found
        raise self.error(f"'{word.text}' is not a user id or a known user name", word)

    def number_or_range(self, kind: Kind, word: Word) -> Number | Range:
        """A number, or ``lo..hi`` (ports: ``1024..65535``)."""
        if ".." not in word.text:
            return self.number(kind, word)
        left, _, right = word.text.partition("..")
        lo = self.number(kind, Word(left, word.start))
        hi = self.number(kind, Word(right, word.start + len(left) + 2))
        if lo > hi:
            raise self.error(f"empty range '{word.text}': {left} is above {right}", word)
        return Range(lo, hi)

    # -- names ---------------------------------------------------------------------

    def states(self, word: Word) -> frozenset[TcpState]:
        found = STATES_BY_NAME.get(word.text.lower())
        if found is None:
            hint = did_you_mean(word.text, STATES_BY_NAME)
            raise self.error(f"unknown state '{word.text}'{hint}", word)
        return found

    def proto(self, word: Word) -> str:
        found = PROTO_NAMES.get(word.text.lower())
        if found is None:
            hint = did_you_mean(word.text, PROTO_NAMES)
            raise self.error(f"unknown protocol '{word.text}'{hint}", word)
        return found

    def family(self, word: Word) -> int:
        found = FAMILY_NAMES.get(word.text.lower())
        if found is None:
            hint = did_you_mean(word.text, FAMILY_NAMES)
            raise self.error(f"unknown address family '{word.text}'{hint}", word)
        return found

    # -- addresses -----------------------------------------------------------------

    def network(self, word: Word) -> Network:
        """An address or network; a v4-mapped IPv6 prefix becomes its IPv4 network."""
        text = word.text
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        if "%" in text or not text or not text.isascii():
            raise self.error(f"'{word.text}' is not an IP address or network", word)
        try:
            net = ip_network(text, strict=False)
        except ValueError:
            raise self.error(f"'{word.text}' is not an IP address or network", word) from None
        return normalize_network(net)

    def host(self, word: Word) -> tuple[Network | None, int | None]:
        """ss's host forms: ``ADDR``, ``ADDR/LEN``, ``ADDR:PORT``, ``[V6]:PORT``, ``*:PORT``,
        ``:PORT``, ``*``; a bare IPv6 address takes no port (write ``[::1]:22``)."""
        text = word.text
        addr, sep, port = text, "", ""
        if text.startswith("["):
            close = text.find("]")
            if close < 0 or (close + 1 < len(text) and text[close + 1] != ":"):
                raise self.error(f"'{text}' is not a host (e.g. [::1]:22)", word)
            addr, sep, port = text[: close + 1], text[close + 1 : close + 2], text[close + 2 :]
        elif text.count(":") == 1:
            addr, sep, port = text.partition(":")
        if sep and not port:
            raise self.error(f"'{text}' has no port after ':'", word)
        net = None if addr in ("", "*") else self.network(Word(addr, word.start))
        number = None
        if port not in ("", "*"):
            number = self.port(Word(port, word.start + len(text) - len(port)))
        return net, number


def normalize_network(net: Network) -> Network:
    """``::ffff:a.b.c.d/n`` (n >= 96) as the IPv4 network it stands for, as ss reads it."""
    if isinstance(net, IPv6Network) and net.prefixlen >= 96 and net.subnet_of(_MAPPED):
        mapped = net.network_address.ipv4_mapped
        if mapped is not None:
            return IPv4Network((mapped, net.prefixlen - 96))
    return net
