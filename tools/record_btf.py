"""Record the BTF fixture: the structs the eBPF program reads, cut out of this kernel's
/sys/kernel/btf/vmlinux and re-encoded as a small BTF blob.

Run from the checkout (reading vmlinux BTF needs no root):
``.venv/bin/python tools/record_btf.py``. It writes tests/fixtures/btf/vmlinux-cut.btf and
expected.json (the kernel release and the offsets ``kernel_offsets`` finds in the full
BTF), to be reviewed before committing.

What is kept: each struct the program reads (``layout.KERNEL_MEMBERS``) with all of its
members, names, bit offsets and bitfield widths as the kernel has them; the types along
each member path (typedefs and qualifiers included); every anonymous struct or union
(a lookup searches them); integer types as they are (bitfields of structs without
``kind_flag`` live in them). Every other member's type becomes one empty placeholder
struct, and pointers point to void: offsets do not depend on them.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sockscope.wire.ebpf import btf as b  # noqa: E402
from sockscope.wire.ebpf.layout import KERNEL_MEMBERS, kernel_offsets  # noqa: E402

OUT = ROOT / "tests" / "fixtures" / "btf"
PLACEHOLDER = "sockscope_elided"


class Cutter:
    """Copies the wanted part of one BTF into a list of new types (ids from 1)."""

    def __init__(self, full: b.Btf) -> None:
        self.full = full
        self.types: list[b.BtfType] = [b.BtfType(b.BTF_KIND_STRUCT, PLACEHOLDER, 0)]
        self.done: dict[tuple[int, frozenset[str]], int] = {}

    def add(self, t: b.BtfType) -> int:
        self.types.append(t)
        return len(self.types)

    def keep(self, old: int, wanted: frozenset[str]) -> int:
        """The new id of ``old``, keeping the member paths ``wanted`` below it."""
        key = (old, wanted)
        if key not in self.done:
            self.done[key] = self._copy(old, wanted)
        return self.done[key]

    def _copy(self, old: int, wanted: frozenset[str]) -> int:
        if old == 0:
            return 0
        t = self.full.type(old)
        if t.kind in b.MODIFIERS:
            return self.add(t._replace(ref=self.keep(t.ref, wanted)))
        if t.kind == b.BTF_KIND_PTR:
            return self.add(t._replace(ref=0))
        if t.kind == b.BTF_KIND_INT:
            return self.add(t)
        if t.kind in (b.BTF_KIND_STRUCT, b.BTF_KIND_UNION):
            index = len(self.types)
            self.types.append(t)  # its id is taken before its members', as any order is valid
            members = tuple(self._member(m, wanted) for m in t.members)
            self.types[index] = t._replace(members=members)
            return index + 1
        return 1  # the placeholder

    def _member(self, m: b.BtfMember, wanted: frozenset[str]) -> b.BtfMember:
        heads = {p.split(".", 1)[0] for p in wanted}
        if m.name in heads:
            below = frozenset(p.split(".", 1)[1] for p in wanted if "." in p and p.split(".", 1)[0] == m.name)
            return m._replace(type_id=self.keep(m.type_id, below))
        if not m.name:
            return m._replace(type_id=self.keep(m.type_id, wanted))
        resolved = self.full.resolve(m.type_id)
        if self.full.type(resolved).kind == b.BTF_KIND_INT:
            return m._replace(type_id=self.keep(resolved, frozenset()))
        return m._replace(type_id=1)


def main() -> None:
    full = b.parse_btf(Path("/sys/kernel/btf/vmlinux").read_bytes())
    wanted: dict[str, set[str]] = {}
    for struct_name, path, _ in KERNEL_MEMBERS.values():
        wanted.setdefault(struct_name, set()).add(path)
    cutter = Cutter(full)
    for struct_name, paths in sorted(wanted.items()):
        cutter.keep(full.struct_id(struct_name), frozenset(paths))
    blob = b.build_btf(cutter.types)
    cut = b.parse_btf(blob)
    expected = kernel_offsets(full)._asdict()
    if kernel_offsets(cut)._asdict() != expected:
        raise SystemExit("the cut BTF gives other offsets than the full one")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "vmlinux-cut.btf").write_bytes(blob)
    (OUT / "expected.json").write_text(
        json.dumps({"kernel": os.uname().release, "types": len(cut), "offsets": expected}, indent=1) + "\n"
    )
    print(f"{len(cut)} types, {len(blob)} bytes (from {len(full)} types): {expected}")


if __name__ == "__main__":
    from _cli import parse  # tools/_cli.py, beside this file (run as a script)

    parse(__doc__)
    main()
