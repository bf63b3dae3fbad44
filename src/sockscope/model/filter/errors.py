"""Pure: the one error a filter expression can raise, with a caret under the fault."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class FilterError(ValueError):
    """A filter that does not parse or does not type-check.

    ``column`` is a 0-based index into ``expression``.
    """

    def __init__(self, message: str, column: int, expression: str) -> None:
        super().__init__(message)
        self.message = message
        self.column = max(0, min(column, len(expression)))
        self.expression = expression

    def __str__(self) -> str:
        return f"{self.message} (column {self.column + 1})"

    def render(self) -> str:
        """The message, then the expression with a caret under the fault."""
        # Tabs and newlines would push the caret out of line; show them as spaces.
        shown = "".join(" " if ch.isspace() else ch for ch in self.expression)
        return f"bad filter at column {self.column + 1}: {self.message}\n  {shown}\n  {' ' * self.column}^"


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest candidate, or ``""`` when none is close.

    Closest is the fewest edits (a swap of two neighbours counts as one, the commonest
    slip), ties broken by difflib's similarity.
    """
    word = word.lower()[:64]
    best: tuple[int, float, str] | None = None
    for name in sorted(set(candidates)):
        ratio = difflib.SequenceMatcher(None, word, name).ratio()
        score = (_edits(word, name), -ratio, name)
        if best is None or score < best:
            best = (score[0], score[1], name)
    if best is None or (best[0] > max(1, len(word) // 3) and -best[1] < 0.6):
        return ""
    return f"; did you mean '{best[2]}'?"


def _edits(a: str, b: str) -> int:
    """Optimal-string-alignment distance: insertions, deletions, changes, swaps."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]
