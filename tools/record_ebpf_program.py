"""Record the golden fixtures of the tracepoint program: its instructions for fixed
layouts (the recorded format file and BTF cut), fixed map fds and two fixed watches.

Run from the checkout after a deliberate change to the program:
``.venv/bin/python tools/record_ebpf_program.py``, then review the diff of
tests/fixtures/ebpf/*.txt (one instruction a line: index, the 8 bytes, what they mean)
and load the new program on a real kernel (the root tests do) before committing.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))
from tests.helpers.ebpf import CTX, FDS, OFF  # noqa: E402

from sockscope.wire.ebpf.asm import describe_insn, parse_insns  # noqa: E402
from sockscope.wire.ebpf.program import ProgramConfig, build_program  # noqa: E402

OUT = ROOT / "tests" / "fixtures" / "ebpf"
CONFIGS = {
    "closes": ProgramConfig(),
    "full": ProgramConfig(
        families=frozenset({4}),
        ports=((True, 80, 80), (False, 1000, 2000)),
        want_open=True,
        want_state=True,
        ring_bytes=1 << 20,
    ),
}


def listing(insns: bytes) -> str:
    lines = []
    for i, insn in enumerate(parse_insns(insns)):
        lines.append(f"{i:04d} {insns[8 * i : 8 * i + 8].hex()}  {describe_insn(insn)}")
    return "\n".join(lines) + "\n"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, config in CONFIGS.items():
        program = build_program(CTX, OFF, FDS, config)
        header = f"# {name}: {config!r}, map fds {tuple(FDS)}\n"
        (OUT / f"program-{name}.txt").write_text(header + listing(program.insns))
        print(f"{name}: {len(program.insns) // 8} instructions")


if __name__ == "__main__":
    from _cli import parse  # tools/_cli.py, beside this file (run as a script)

    parse(__doc__)
    main()
