"""Pure: the text of ``sockscope help filters``, generated from the field registry."""

from __future__ import annotations

from sockscope.model.fields import ALIASES, FIELDS
from sockscope.model.filter.parser import MAX_DEPTH
from sockscope.model.filter.values import EXTRA_STATE_NAMES
from sockscope.model.states import STATE_NAMES, TcpState

GROUPS = ("all", "connected", "synchronized", "bucket", "big")

_OPERATORS = """\
Operators
  ==  !=  <  <=  >  >=   compare (= is ==; ss's eq ne lt gt le ge work too)
  in                     membership: a set {80 443 8000..8099}, a range, or a network
  ~                      regular expression search, on text fields
  and  or  not           also && || !; parentheses group; 'a b' means 'a and b'
"""

_VALUES = """\
Values
  numbers      80, 0x1f; ranges lo..hi (1024..65535)
  ports        a number or a service name: telnet, ssh (':ssh' as ss writes it)
  addresses    127.0.0.1, ::1, networks 10.0.0.0/8, fe80::/10; ::ffff:a.b.c.d is a.b.c.d
  sizes        4096, 10kB, 10MB (powers of 1000), 4KiB, 1MiB (powers of 1024)
  durations    5s, 200ms, 50us, 2m, 1h; a bare number is seconds
  users        a user name or a uid
  text         a word or a quoted string: process ~ "^(nginx|apache)"
"""

_SEMANTICS = """\
Absent values and many values
  A comparison with an absent value is false: a listener has no rport, a socket read
  without tcp_info has no rtt. '!=' means 'not ==', so 'rport != 80' holds on a listener.
  port and addr match either end; pid and process match any owning process. Hence
  'port != 22' means neither end is 22, and 'pid != 1' means no owner is pid 1.
"""

_SS = """\
ss syntax (each line parses to the same tree as its right-hand side)
  state established               state == established
  state established state listen  state in {established, listen}   (a run: either state)
  exclude listening               state != listen
  sport = :ssh                    lport == 22   (ops: = == != eq ne lt gt le ge < > <= >=)
  dport != :80                    rport != 80
  src 127.0.0.1                   laddr == 127.0.0.1
  dst 10.0.0.0/8:443              raddr in 10.0.0.0/8 and rport == 443
  src [::1]:22                    laddr == ::1 and lport == 22
  '( dport = :ssh )'              a quoted part is a sub-filter, as ss users quote it
"""

_EXAMPLES = """\
Examples
  port == telnet
  state == listen and lport < 1024
  state in {established, close_wait} and raddr in 10.0.0.0/8
  tcp.port == 443 || udp.port == 53
  not (addr == 127.0.0.1 or addr == ::1)
  process ~ nginx and rtt > 200ms
  state established '( dport = :ssh or sport = :ssh )'
"""


def _field_table(width: int) -> str:
    rows = [("FIELD", "TYPE", "MEANING", "EXAMPLE")]
    rows += [(f.name, f.kind.value, f.help, f.example) for f in FIELDS]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  " + "  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows]
    if max(len(line.rstrip()) for line in lines) <= width:
        return "Fields\n" + "\n".join(line.rstrip() for line in lines) + "\n"
    # Too wide for one line a field: the meaning wraps beside the name and type (below
    # them on a narrow terminal), and the example goes on a line of its own.
    indent = " " * (2 + widths[0] + 2 + widths[1] + 2)
    stacked = width - len(indent) < 30
    if stacked:
        indent = " " * 6
    title = f"  {'FIELD'.ljust(widths[0])}  {'TYPE'.ljust(widths[1])}  MEANING, then an example"
    out = ["Fields", "  FIELD (TYPE): meaning, then an example" if stacked else title]
    for name, kind, meaning, example in rows[1:]:
        head = f"  {name.ljust(widths[0])}  {kind.ljust(widths[1])}  "
        text = meaning + (f"\ne.g. {example}" if example else "")
        wrapped = [w for para in text.split("\n") for w in _wrap(para, width - len(indent))]
        if stacked:
            out += [f"  {name} ({kind})", *(indent + w for w in wrapped)]
        else:
            out += [head + wrapped[0], *(indent + w for w in wrapped[1:])]
    return "\n".join(out) + "\n"


def _wrap(text: str, width: int) -> list[str]:
    import textwrap  # noqa: PLC0415 - only the help text needs it

    return textwrap.wrap(text, width, break_on_hyphens=False) or [""]


def _fit(text: str, width: int) -> str:
    """Lines longer than ``width`` wrapped, keeping their indent (and a little more)."""
    out = []
    for line in text.split("\n"):
        if len(line) <= width:
            out.append(line)
            continue
        lead = " " * (len(line) - len(line.lstrip()))
        parts = _wrap(line.strip(), max(20, width - len(lead) - 2))
        out += [lead + parts[0], *(lead + "  " + p for p in parts[1:])]
    return "\n".join(out)


def _aliases() -> str:
    by_field: dict[str, list[str]] = {}
    for alias, name in ALIASES.items():
        by_field.setdefault(name, []).append(alias)
    lines = [f"  {name:<8} {', '.join(sorted(aliases))}" for name, aliases in sorted(by_field.items())]
    return (
        "Aliases (Wireshark and ss names)\n"
        + "\n".join(lines)
        + "\n  bare words: tcp, udp, unix (proto ==), ip, ipv6 (family ==)\n"
    )


def _states() -> str:
    names = {**STATE_NAMES, **EXTRA_STATE_NAMES}
    singles: dict[TcpState, list[str]] = {}
    for name, states in names.items():
        if name not in GROUPS and len(states) == 1:
            singles.setdefault(next(iter(states)), []).append(name)
    lines = [f"  {', '.join(sorted(set(spellings)))}" for _, spellings in sorted(singles.items())]
    groups = [f"  {g:<13} {' '.join(sorted(s.name.lower() for s in names[g]))}" for g in GROUPS]
    return (
        "States (any spelling on a line)\n" + "\n".join(lines) + "\nState groups\n" + "\n".join(groups) + "\n"
    )


def render_filter_help(width: int = 80) -> str:
    """The filter language's reference, as ``sockscope help filters`` prints it, in
    lines of at most ``width`` characters (the terminal's, or 80 in a pipe)."""
    intro = (
        "Filters: 'field op value', combined with and/or/not.\n"
        f"The same language works in every command. Nesting is limited to {MAX_DEPTH} levels.\n"
    )
    width = max(40, width)
    parts = (intro, _field_table(width), _aliases(), _OPERATORS, _VALUES, _states(), _SEMANTICS, _SS)
    return _fit("\n".join((*parts, _EXAMPLES)), width)
