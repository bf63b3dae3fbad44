"""Pure: splits a filter expression into tokens, each with its column."""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

from sockscope.model.filter.errors import FilterError


class Tok(StrEnum):
    """Token kinds. Keywords (and, or, not, in, eq...) are WORDs the parser recognises."""

    WORD = "word"
    STRING = "string"
    OP = "operator"
    AND = "'&&'"
    OR = "'||'"
    NOT = "'!'"
    LPAREN = "'('"
    RPAREN = "')'"
    LBRACE = "'{'"
    RBRACE = "'}'"
    COMMA = "','"
    EOF = "end of filter"


class Token(NamedTuple):
    """One token: its kind, its text (quotes removed from strings), and where it starts."""

    kind: Tok
    text: str
    start: int


#: Characters that end a word: a word is everything else (addresses, ranges, :ports...).
DELIMITERS = frozenset("(){},!&|=<>~\"'")

_PUNCT = {"(": Tok.LPAREN, ")": Tok.RPAREN, "{": Tok.LBRACE, "}": Tok.RBRACE, ",": Tok.COMMA}
# Longest first: "<=" must win over "<".
_OPERATORS = ("==", "!=", "<=", ">=", "=~", "&&", "||", "=", "<", ">", "~", "!")
_OP_KIND = {"&&": Tok.AND, "||": Tok.OR, "!": Tok.NOT}
_OP_CANON = {"=": "==", "=~": "~"}


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, ending with an EOF token.

    Raises:
        FilterError: an unterminated string or a lone ``&``/``|``.
    """
    out: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in _PUNCT:
            out.append(Token(_PUNCT[ch], ch, i))
            i += 1
        elif ch in "\"'":
            i = _string(text, i, out)
        elif ch in DELIMITERS:
            i = _operator(text, i, out)
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in DELIMITERS:
                j += 1
            out.append(Token(Tok.WORD, text[i:j], i))
            i = j
    out.append(Token(Tok.EOF, "", n))
    return out


def _operator(text: str, i: int, out: list[Token]) -> int:
    for op in _OPERATORS:
        if text.startswith(op, i):
            kind = _OP_KIND.get(op, Tok.OP)
            out.append(Token(kind, _OP_CANON.get(op, op), i))
            return i + len(op)
    ch = text[i]
    raise FilterError(f"lone '{ch}'; did you mean '{ch}{ch}'?", i, text)


def _string(text: str, start: int, out: list[Token]) -> int:
    quote, i, chars = text[start], start + 1, []
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in (quote, "\\"):
            chars.append(text[i + 1])
            i += 2
            continue
        if ch == quote:
            out.append(Token(Tok.STRING, "".join(chars), start))
            return i + 1
        chars.append(ch)
        i += 1
    raise FilterError(f"unterminated string: no closing {quote}", start, text)
