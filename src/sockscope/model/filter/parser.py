"""Pure: a recursive-descent parser for both filter syntaxes.

Grammar (``or`` binds loosest; two terms side by side mean ``and``, as in ss)::

    filter  := [or]
    or      := and (("or" | "||") and)*
    and     := unary [("and" | "&&")] unary ...
    unary   := ("not" | "!") unary | "(" or ")" | QUOTED-FILTER | atom
    atom    := FIELD OP VALUE | FIELD "in" (SET | VALUE) | FIELD "~" TEXT
             | ("state" | "exclude") STATE ...          ss: a run of state clauses
             | ("src" | "dst") HOST                      ss: an address, :port or both
             | "tcp" | "udp" | "unix" | "ip" | "ipv6"    Wireshark: protocol tests

Nesting (parentheses and ``not``) is bounded by ``MAX_DEPTH`` so no input can exhaust
the interpreter's stack.
"""

from __future__ import annotations

import re

from sockscope.model.fields import ALIASES, FIELDS, Field, Kind, lookup
from sockscope.model.filter.ast import (
    TRUE,
    Cmp,
    Item,
    Member,
    Node,
    Not,
    Regex,
    StateIn,
    make_and,
    make_or,
)
from sockscope.model.filter.errors import FilterError, did_you_mean
from sockscope.model.filter.lexer import Tok, Token, tokenize
from sockscope.model.filter.regex import UnsupportedRegexError, compile_search
from sockscope.model.filter.values import STATES_BY_NAME, Resolver, ValueParser, Word
from sockscope.model.states import ALL_STATES, TcpState

MAX_DEPTH = 64
#: ss's word operators, and ``in``.
WORD_OPS = {"eq": "==", "ne": "!=", "neq": "!=", "lt": "<", "gt": ">", "le": "<=", "ge": ">=", "in": "in"}
ORDERED_KINDS = frozenset({Kind.PORT, Kind.INT, Kind.SIZE, Kind.DURATION, Kind.USER})
#: Bare words that are whole tests, as in Wireshark.
BARE_TESTS: dict[str, Node] = {
    "tcp": Cmp("proto", "==", "tcp"),
    "udp": Cmp("proto", "==", "udp"),
    "unix": Cmp("proto", "==", "unix"),
    "ip": Cmp("family", "==", 4),
    "ipv6": Cmp("family", "==", 6),
}
SS_STATE_WORDS = ("state", "exclude", "excl")
SS_HOST_WORDS = ("src", "dst")
SS_PORT_WORDS = ("sport", "dport")
#: Words that cannot start a term (so ``a b`` means ``a and b`` only for real terms).
NOT_TERM_START = frozenset({"and", "or", *WORD_OPS})
FIELD_WORDS = sorted({f.name for f in FIELDS} | set(ALIASES) | set(BARE_TESTS) | {"state", "exclude"})
HOST_PORT_FIELD = {"laddr": "lport", "raddr": "rport"}


class Parser:
    """Parses one expression; ``parse()`` returns its canonical tree."""

    def __init__(
        self, text: str, resolve_service: Resolver | None = None, resolve_user: Resolver | None = None
    ) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0
        self.depth = 0
        self.values = ValueParser(text, resolve_service, resolve_user)

    # -- token plumbing ----------------------------------------------------------------

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        tok = self.peek()
        self.pos = min(self.pos + 1, len(self.tokens) - 1)
        return tok

    def error(self, message: str, tok: Token) -> FilterError:
        return FilterError(message, tok.start, self.text)

    def enter(self, tok: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"filter nested too deeply (more than {MAX_DEPTH} levels)", tok)

    @staticmethod
    def is_word(tok: Token, *words: str) -> bool:
        return tok.kind is Tok.WORD and tok.text.lower() in words

    def is_operator(self, tok: Token) -> bool:
        return tok.kind is Tok.OP or self.is_word(tok, *WORD_OPS)

    # -- expressions ---------------------------------------------------------------------

    def parse(self) -> Node:
        if self.peek().kind is Tok.EOF:
            return TRUE
        node = self.parse_or()
        tok = self.peek()
        if tok.kind is Tok.RPAREN:
            raise self.error("unbalanced ')': no '(' before it", tok)
        if tok.kind is not Tok.EOF:
            raise self.error(f"expected 'and', 'or' or the end of the filter, found {describe(tok)}", tok)
        return node

    def parse_or(self) -> Node:
        items = [self.parse_and()]
        while self.peek().kind is Tok.OR or self.is_word(self.peek(), "or"):
            self.advance()
            items.append(self.parse_and())
        return make_or(items)

    def parse_and(self) -> Node:
        items = [self.parse_unary()]
        while True:
            tok = self.peek()
            if tok.kind is Tok.AND or self.is_word(tok, "and"):
                self.advance()
            elif not self.starts_term(tok):
                break
            items.append(self.parse_unary())
        return make_and(items)

    def starts_term(self, tok: Token) -> bool:
        if tok.kind in (Tok.LPAREN, Tok.NOT, Tok.STRING):
            return True
        return tok.kind is Tok.WORD and tok.text.lower() not in NOT_TERM_START

    def parse_unary(self) -> Node:
        tok = self.peek()
        if tok.kind is Tok.NOT or self.is_word(tok, "not"):
            self.enter(tok)
            self.advance()
            inner = self.parse_unary()
            self.depth -= 1
            return negate(inner)
        if tok.kind is Tok.LPAREN:
            return self.parse_group(tok)
        if tok.kind is Tok.WORD:
            return self.parse_atom()
        if tok.kind is Tok.STRING:
            return self.parse_quoted(tok)
        raise self.error(f"expected a field name, '(' or 'not', found {describe(tok)}", tok)

    def parse_quoted(self, tok: Token) -> Node:
        """A quoted term is a sub-filter: ss users quote ``'( dport = :ssh )'``."""
        self.enter(tok)
        self.advance()
        try:
            inner = Parser(tok.text, self.values.resolve_service, self.values.resolve_user)
            inner.depth = self.depth
            if inner.peek().kind is Tok.EOF:
                raise inner.error("empty quoted filter", inner.peek())
            node = inner.parse()
        except FilterError as exc:
            # Columns inside the quotes are shifted by the opening quote (escapes aside).
            raise FilterError(exc.message, tok.start + 1 + exc.column, self.text) from None
        self.depth -= 1
        return node

    def parse_group(self, opening: Token) -> Node:
        self.enter(opening)
        self.advance()
        if self.peek().kind is Tok.RPAREN:
            raise self.error("empty parentheses", self.peek())
        node = self.parse_or()
        close = self.peek()
        if close.kind is not Tok.RPAREN:
            raise self.error(
                f"expected ')' to close the '(' at column {opening.start + 1}, found {describe(close)}", close
            )
        self.advance()
        self.depth -= 1
        return node

    # -- atoms ---------------------------------------------------------------------------

    def parse_atom(self) -> Node:
        tok = self.peek()
        name = tok.text.lower()
        after = self.peek(1)
        bare = after.kind in (Tok.WORD, Tok.STRING) and not self.is_operator(after)
        if name in SS_STATE_WORDS and bare and after.kind is Tok.WORD:
            return self.parse_ss_states()
        self.advance()
        if name in BARE_TESTS and not self.is_operator(after):
            return BARE_TESTS[name]
        field = lookup(name)
        if field is None:
            raise self.unknown_field(tok)
        if bare and name in SS_HOST_WORDS + SS_PORT_WORDS:
            return self.parse_value(field, "==", after, host=name in SS_HOST_WORDS)
        op_tok = self.peek()
        if not self.is_operator(op_tok):
            raise self.error(
                f"expected an operator after '{tok.text}' (== != < <= > >= in ~), found {describe(op_tok)}",
                op_tok,
            )
        self.advance()
        op = WORD_OPS.get(op_tok.text.lower(), op_tok.text)
        return self.parse_value(field, op, op_tok, host=field.name in HOST_PORT_FIELD)

    def unknown_field(self, tok: Token) -> FilterError:
        word = tok.text.lower()
        if word in STATES_BY_NAME:
            return self.error(f"'{tok.text}' is a state, not a field; write 'state == {tok.text}'", tok)
        if word[:1].isdigit() or word.startswith((":", "[", "*")):
            return self.error(f"expected a field name before '{tok.text}' (e.g. 'port == 80')", tok)
        hint = did_you_mean(word, FIELD_WORDS)
        return self.error(f"unknown field '{tok.text}'{hint}", tok)

    def parse_ss_states(self) -> Node:
        """A run of ss clauses: ``state`` adds states, ``exclude`` removes them."""
        states: frozenset[TcpState] | None = None
        while (
            self.is_word(self.peek(), *SS_STATE_WORDS)
            and self.peek(1).kind is Tok.WORD
            and not self.is_operator(self.peek(1))
        ):
            keyword = self.advance().text.lower()
            value = self.advance()
            named = self.values.states(Word(value.text, value.start))
            if keyword == "state":
                states = (states or frozenset()) | named
            else:
                states = (ALL_STATES if states is None else states) - named
        return StateIn(states if states is not None else ALL_STATES)

    def parse_value(self, field: Field, op: str, op_tok: Token, *, host: bool) -> Node:
        words, is_set = self.parse_words(op_tok)
        if op == "~":
            return self.regex(field, op_tok, words, is_set)
        if op in ("<", "<=", ">", ">="):
            if field.kind not in ORDERED_KINDS:
                raise self.error(
                    f"'{op_tok.text}' does not apply to '{field.name}' "
                    f"({field.kind.value}); use ==, != or in",
                    op_tok,
                )
            if is_set:
                raise self.error(f"a set needs 'in', not '{op_tok.text}'", op_tok)
            return Cmp(field.name, op, self.values.number(field.kind, words[0]))
        node = self.positive(field, words, is_set=is_set, host=host)
        return negate(node) if op == "!=" else node

    def parse_words(self, op_tok: Token) -> tuple[list[Word], bool]:
        tok = self.advance()
        if tok.kind in (Tok.WORD, Tok.STRING):
            return [Word(tok.text, tok.start)], False
        if tok.kind is not Tok.LBRACE:
            raise self.error(f"expected a value after '{op_tok.text}', found {describe(tok)}", tok)
        words: list[Word] = []
        while True:
            item = self.advance()
            if item.kind is Tok.RBRACE:
                break
            if item.kind in (Tok.WORD, Tok.STRING):
                words.append(Word(item.text, item.start))
            elif item.kind is Tok.EOF:
                raise self.error("unclosed '{': no '}' after it", tok)
            elif item.kind is not Tok.COMMA:
                raise self.error(f"unexpected {describe(item)} in a set", item)
        if not words:
            raise self.error("empty set", tok)
        return words, True

    def regex(self, field: Field, op_tok: Token, words: list[Word], is_set: bool) -> Node:
        if field.kind is not Kind.TEXT:
            raise self.error(f"'~' matches text; '{field.name}' is a {field.kind.value}", op_tok)
        if is_set:
            raise self.error("'~' takes one regular expression, not a set", op_tok)
        try:
            compile_search(words[0].text)
        except UnsupportedRegexError as exc:
            raise FilterError(f"regular expression refused: {exc}", words[0].start, self.text) from None
        except (re.error, RecursionError, OverflowError, ValueError) as exc:
            raise FilterError(f"bad regular expression: {exc}", words[0].start, self.text) from None
        return Regex(field.name, words[0].text)

    def positive(self, field: Field, words: list[Word], *, is_set: bool, host: bool) -> Node:
        """The node for ``field == value`` or ``field in {values}``."""
        vp, kind = self.values, field.kind
        if kind is Kind.STATE:
            states: frozenset[TcpState] = frozenset()
            for word in words:
                states |= vp.states(word)
            return StateIn(states)
        if kind is Kind.ADDR and host and not is_set:
            return self.host(field, words[0])
        items: list[Item]
        if kind is Kind.ADDR:
            items = [vp.network(w) for w in words]
            return Member(field.name, tuple(items))
        if kind is Kind.PROTO:
            items = [vp.proto(w) for w in words]
        elif kind is Kind.FAMILY:
            items = [vp.family(w) for w in words]
        elif kind is Kind.TEXT:
            items = [w.text for w in words]
        else:
            items = [vp.number_or_range(kind, w) for w in words]
        if len(items) == 1 and isinstance(items[0], int | float | str):
            return Cmp(field.name, "==", items[0])
        return Member(field.name, tuple(items))

    def host(self, field: Field, word: Word) -> Node:
        net, port = self.values.host(word)
        parts: list[Node] = []
        if net is not None:
            parts.append(Member(field.name, (net,)))
        if port is not None:
            parts.append(Cmp(HOST_PORT_FIELD[field.name], "==", port))
        return make_and(parts)


def negate(node: Node) -> Node:
    """``not node``, canonical: double negation cancels, a state set is complemented."""
    if isinstance(node, Not):
        return node.item
    if isinstance(node, StateIn):
        return StateIn(ALL_STATES - node.states)
    return Not(node)


def describe(tok: Token) -> str:
    """How a token is named in an error message."""
    if tok.kind is Tok.EOF:
        return "the end of the filter"
    if tok.kind is Tok.STRING:
        return f'"{tok.text}"'
    return f"'{tok.text}'"


def parse_tree(
    text: str, resolve_service: Resolver | None = None, resolve_user: Resolver | None = None
) -> Node:
    """The canonical tree of ``text``.

    Raises:
        FilterError: the text is not a valid filter.
    """
    return Parser(text, resolve_service, resolve_user).parse()
