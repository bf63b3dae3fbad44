"""Pure: BTF, the kernel's type information (``/sys/kernel/btf/vmlinux``), read for the
byte offsets of a few struct members.

The layout is ``include/uapi/linux/btf.h``: a ``struct btf_header``, then a type section
and a string section. Each type is a 12-byte ``struct btf_type`` (name offset, ``info``
with the kind in bits 24-28, ``vlen`` in bits 0-15 and ``kind_flag`` in bit 31, then a
size or a type id) followed by data whose length depends on the kind. Type ids count
from 1 in section order; 0 is ``void``. Offsets of struct members are in bits; with
``kind_flag`` set the top 8 bits of a member's offset word give its bitfield width.

A kernel has ~130,000 types: ``parse_btf`` walks them once, keeping only where each
starts and which structs have which names; everything else is decoded on demand.
``build_btf`` writes the same format back, for small test fixtures.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence

from sockscope._namedtuple import NamedTuple

BTF_MAGIC = 0xEB9F
BTF_VERSION = 1
# struct btf_header { __u16 magic; __u8 version; __u8 flags; __u32 hdr_len;
#                     __u32 type_off, type_len, str_off, str_len; }
BTF_HEADER = struct.Struct("<HBBIIIII")
# struct btf_type { __u32 name_off; __u32 info; __u32 size_or_type; }
BTF_TYPE = struct.Struct("<III")
# struct btf_member { __u32 name_off; __u32 type; __u32 offset; }
BTF_MEMBER = struct.Struct("<III")
# struct btf_array { __u32 type; __u32 index_type; __u32 nelems; }
BTF_ARRAY = struct.Struct("<III")
U32 = struct.Struct("<I")

BTF_KIND_INT = 1
BTF_KIND_PTR = 2
BTF_KIND_ARRAY = 3
BTF_KIND_STRUCT = 4
BTF_KIND_UNION = 5
BTF_KIND_ENUM = 6
BTF_KIND_FWD = 7
BTF_KIND_TYPEDEF = 8
BTF_KIND_VOLATILE = 9
BTF_KIND_CONST = 10
BTF_KIND_RESTRICT = 11
BTF_KIND_FUNC = 12
BTF_KIND_FUNC_PROTO = 13
BTF_KIND_VAR = 14
BTF_KIND_DATASEC = 15
BTF_KIND_FLOAT = 16
BTF_KIND_DECL_TAG = 17
BTF_KIND_TYPE_TAG = 18
BTF_KIND_ENUM64 = 19

#: Bytes after ``struct btf_type``: (fixed, per vlen item), by kind.
_TAIL = {
    BTF_KIND_INT: (4, 0),
    BTF_KIND_PTR: (0, 0),
    BTF_KIND_ARRAY: (12, 0),
    BTF_KIND_STRUCT: (0, 12),
    BTF_KIND_UNION: (0, 12),
    BTF_KIND_ENUM: (0, 8),
    BTF_KIND_FWD: (0, 0),
    BTF_KIND_TYPEDEF: (0, 0),
    BTF_KIND_VOLATILE: (0, 0),
    BTF_KIND_CONST: (0, 0),
    BTF_KIND_RESTRICT: (0, 0),
    BTF_KIND_FUNC: (0, 0),
    BTF_KIND_FUNC_PROTO: (0, 8),
    BTF_KIND_VAR: (4, 0),
    BTF_KIND_DATASEC: (0, 12),
    BTF_KIND_FLOAT: (0, 0),
    BTF_KIND_DECL_TAG: (4, 0),
    BTF_KIND_TYPE_TAG: (0, 0),
    BTF_KIND_ENUM64: (0, 12),
}
#: Kinds that only qualify or rename another type: looked through for a member's type.
MODIFIERS = frozenset(
    {BTF_KIND_TYPEDEF, BTF_KIND_VOLATILE, BTF_KIND_CONST, BTF_KIND_RESTRICT, BTF_KIND_TYPE_TAG}
)
#: Kinds whose third word is a size in bytes.
SIZED = frozenset(
    {BTF_KIND_INT, BTF_KIND_ENUM, BTF_KIND_STRUCT, BTF_KIND_UNION, BTF_KIND_FLOAT, BTF_KIND_ENUM64}
)
#: Kinds with nothing after ``struct btf_type`` that ``build_btf`` writes.
PLAIN = MODIFIERS | {BTF_KIND_PTR, BTF_KIND_FWD}
POINTER_SIZE = 8  # only 64-bit machines load this program


class BtfError(ValueError):
    """Not BTF, or BTF without the member asked for (or with one we cannot read)."""


class BtfMember(NamedTuple):
    """A ``struct btf_member``; ``bits`` is its bitfield width, 0 for a whole member."""

    name: str
    type_id: int
    bit_offset: int
    bits: int


class BtfType(NamedTuple):
    """One type. ``ref`` is the size (INT, STRUCT, ...) or the referred type id (PTR,
    TYPEDEF, ...); ``members`` for STRUCT/UNION; ``encoding`` the INT's encoding word;
    ``array`` (element type, index type, count) for ARRAY."""

    kind: int
    name: str
    ref: int
    members: tuple[BtfMember, ...] = ()
    encoding: int = 0
    array: tuple[int, int, int] = (0, 0, 0)


class Member(NamedTuple):
    """Where a member path ends up: byte offset from the outer struct, size, type id."""

    offset: int
    size: int
    type_id: int


class Btf:
    """Types by id, decoded when asked for; structs and unions by name."""

    def __init__(self, types: bytes, strings: bytes, starts: list[int], named: dict[str, int]) -> None:
        self._types = types
        self._strings = strings
        self._starts = starts  # starts[id] = offset of type id in the type section
        self._named = named

    def __len__(self) -> int:
        """The number of types, ``void`` (id 0) not counted."""
        return len(self._starts) - 1

    def name(self, offset: int) -> str:
        end = self._strings.find(b"\0", offset)
        if end < 0 or offset >= len(self._strings):
            raise BtfError(f"string offset {offset} outside the string section")
        return self._strings[offset:end].decode(errors="replace")

    def type(self, type_id: int) -> BtfType:
        if type_id == 0:
            return BtfType(0, "void", 0)
        if not 0 < type_id < len(self._starts):
            raise BtfError(f"no type id {type_id}")
        pos = self._starts[type_id]
        name_off, info, ref = BTF_TYPE.unpack_from(self._types, pos)
        kind, vlen, kflag = (info >> 24) & 0x1F, info & 0xFFFF, info >> 31
        t = BtfType(kind, self.name(name_off), ref)
        if kind in (BTF_KIND_STRUCT, BTF_KIND_UNION):
            return t._replace(members=tuple(self._members(pos + BTF_TYPE.size, vlen, kflag)))
        if kind == BTF_KIND_INT:
            return t._replace(encoding=U32.unpack_from(self._types, pos + BTF_TYPE.size)[0])
        if kind == BTF_KIND_ARRAY:
            return t._replace(array=BTF_ARRAY.unpack_from(self._types, pos + BTF_TYPE.size))
        return t

    def _members(self, pos: int, vlen: int, kflag: int) -> Iterable[BtfMember]:
        for i in range(vlen):
            name_off, type_id, offset = BTF_MEMBER.unpack_from(self._types, pos + 12 * i)
            bits = offset >> 24 if kflag else 0
            yield BtfMember(self.name(name_off), type_id, offset & 0xFFFFFF if kflag else offset, bits)

    def struct_id(self, name: str) -> int:
        """The id of the struct (or union) called ``name``."""
        type_id = self._named.get(name)
        if type_id is None:
            raise BtfError(f"no struct {name} in this kernel's BTF")
        return type_id

    def resolve(self, type_id: int) -> int:
        """``type_id`` with typedefs and qualifiers looked through."""
        for _ in range(64):  # a loop in the graph would be a corrupt blob
            t = self.type(type_id)
            if t.kind not in MODIFIERS:
                return type_id
            type_id = t.ref
        raise BtfError(f"type {type_id}: modifiers do not end")

    def size_of(self, type_id: int) -> int:
        t = self.type(self.resolve(type_id))
        if t.kind in SIZED:
            return t.ref
        if t.kind == BTF_KIND_PTR:
            return POINTER_SIZE
        if t.kind == BTF_KIND_ARRAY:
            return self.size_of(t.array[0]) * t.array[2]
        raise BtfError(f"type {type_id} ({t.name or 'anonymous'}, kind {t.kind}) has no size")

    def member(self, struct_name: str, path: str) -> Member:
        """Where ``struct_name``'s member ``path`` ("a.b.c") is, looking through anonymous
        structs and unions as C does. Raises ``BtfError`` for a missing member or a
        bitfield (whose bytes a plain load cannot read)."""
        type_id, offset = self.struct_id(struct_name), 0
        for part in path.split("."):
            found = self._find(self.resolve(type_id), part)
            if found is None:
                raise BtfError(f"struct {struct_name} has no member {path} in this kernel's BTF")
            bit_offset, m = found
            if m.bits or bit_offset % 8 or self._int_bitfield(m.type_id):
                raise BtfError(f"{struct_name}.{path}: {part} is a bitfield")
            offset += bit_offset // 8
            type_id = m.type_id
        return Member(offset, self.size_of(type_id), type_id)

    def member_offset(self, struct_name: str, path: str) -> int:
        return self.member(struct_name, path).offset

    def _find(self, struct_id: int, name: str) -> tuple[int, BtfMember] | None:
        t = self.type(struct_id)
        if t.kind not in (BTF_KIND_STRUCT, BTF_KIND_UNION):
            return None
        for m in t.members:
            if m.name == name:
                return m.bit_offset, m
            if not m.name:  # an anonymous struct or union: its members are ours
                inner = self._find(self.resolve(m.type_id), name)
                if inner is not None:
                    return m.bit_offset + inner[0], inner[1]
        return None

    def _int_bitfield(self, type_id: int) -> bool:
        # Without kind_flag, a bitfield is an INT whose encoding says fewer bits.
        t = self.type(self.resolve(type_id))
        if t.kind != BTF_KIND_INT:
            return False
        bits, bit_offset = t.encoding & 0xFF, (t.encoding >> 16) & 0xFF
        return bit_offset != 0 or bits != 8 * t.ref


def parse_btf(data: bytes) -> Btf:
    """The types of a raw BTF blob (``/sys/kernel/btf/vmlinux``, or a fixture)."""
    if len(data) < BTF_HEADER.size:
        raise BtfError("too short for a BTF header")
    magic, version, _, hdr_len, type_off, type_len, str_off, str_len = BTF_HEADER.unpack_from(data)
    if magic != BTF_MAGIC or version != BTF_VERSION:
        raise BtfError(f"not BTF (magic {magic:#x}, version {version})")
    if hdr_len + max(type_off + type_len, str_off + str_len) > len(data):
        raise BtfError("sections run past the end of the data")
    types = data[hdr_len + type_off : hdr_len + type_off + type_len]
    strings = data[hdr_len + str_off : hdr_len + str_off + str_len]
    starts, named = _index(types, strings)
    return Btf(types, strings, starts, named)


def _index(types: bytes, strings: bytes) -> tuple[list[int], dict[str, int]]:
    """Where each type starts, and the ids of named structs and unions."""
    starts = [0]
    named: dict[str, int] = {}
    unpack, end, pos = BTF_TYPE.unpack_from, len(types), 0
    tails = [_TAIL.get(kind, (-1, 0)) for kind in range(32)]
    while pos < end:
        if pos + 12 > end:
            raise BtfError("type section cut short")
        name_off, info, _ = unpack(types, pos)
        kind = (info >> 24) & 0x1F
        fixed, per_item = tails[kind]
        if fixed < 0:
            raise BtfError(f"unknown BTF kind {kind} (type {len(starts)})")
        if name_off and kind in (BTF_KIND_STRUCT, BTF_KIND_UNION):
            name = strings[name_off : strings.find(b"\0", name_off)].decode(errors="replace")
            named.setdefault(name, len(starts))
        starts.append(pos)
        pos += 12 + fixed + per_item * (info & 0xFFFF)
    if pos != end:
        raise BtfError("the last type runs past the type section")
    return starts, named


def build_btf(types: Sequence[BtfType]) -> bytes:
    """A BTF blob holding ``types`` as ids 1, 2, ... (INT, PTR, ARRAY, STRUCT, UNION,
    FWD and the modifiers; other kinds carry data this writer does not know)."""
    strings = bytearray(b"\0")
    offsets: dict[str, int] = {"": 0}

    def string(s: str) -> int:
        if s not in offsets:
            offsets[s] = len(strings)
            strings.extend(s.encode() + b"\0")
        return offsets[s]

    body = bytearray()
    for t in types:
        body += _build_type(t, string)
    sizes = (0, len(body), len(body), len(strings))  # type_off, type_len, str_off, str_len
    return BTF_HEADER.pack(BTF_MAGIC, BTF_VERSION, 0, BTF_HEADER.size, *sizes) + bytes(body) + bytes(strings)


def _build_type(t: BtfType, string: Callable[[str], int]) -> bytes:
    if t.kind in (BTF_KIND_STRUCT, BTF_KIND_UNION):
        kflag = any(m.bits for m in t.members)
        info = (1 << 31 if kflag else 0) | t.kind << 24 | len(t.members)
        out = BTF_TYPE.pack(string(t.name), info, t.ref)
        for m in t.members:
            offset = (m.bits << 24 | m.bit_offset) if kflag else m.bit_offset
            out += BTF_MEMBER.pack(string(m.name), m.type_id, offset)
        return out
    head = BTF_TYPE.pack(string(t.name), t.kind << 24, t.ref)
    if t.kind == BTF_KIND_INT:
        return head + U32.pack(t.encoding)
    if t.kind == BTF_KIND_ARRAY:
        return head + BTF_ARRAY.pack(*t.array)
    if t.kind in PLAIN:
        return head
    raise BtfError(f"build_btf does not write kind {t.kind}")
