"""What a tour step claims, whether the real sockets bore it out, and the evidence."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sockscope.demo.stage import CommandRun, Stage

TITLES = {
    1: "the server listens",
    2: "binding one address",
    3: "a client connects",
    4: "the connection request queue",
    5: "the application accepts",
    6: "a large download and short connections",
}
STEPS = len(TITLES)


@dataclass(frozen=True)
class Claim:
    """One sentence of the primer, checked on the sockets the step made."""

    text: str
    passed: bool
    evidence: str


@dataclass
class StepResult:
    """One step of the tour: its claims, or why it was skipped."""

    number: int
    title: str
    claims: list[Claim] = field(default_factory=list)
    skipped: str | None = None  # the reason, when the step could not run here
    runs: list[CommandRun] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Every claim held (a skipped step neither passes nor fails)."""
        return self.skipped is None and bool(self.claims) and all(c.passed for c in self.claims)

    @property
    def failed(self) -> bool:
        """Some claim did not hold."""
        return self.skipped is None and not self.passed

    def check(self, text: str, passed: bool, evidence: str) -> Claim:
        """Record a claim."""
        claim = Claim(text, bool(passed), evidence)
        self.claims.append(claim)
        return claim

    def claim(self, start: str) -> Claim:
        """The claim whose text starts with ``start`` (for tests)."""
        return next(c for c in self.claims if c.text.startswith(start))


def wait_for(cond: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll ``cond`` until it holds or ``timeout`` seconds pass; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(interval)
    return cond()


def row(output: str, *columns: str) -> str | None:
    """The first line of a listing whose whitespace-separated cells include ``columns``
    in order, one right after another."""
    want = list(columns)
    for line in output.splitlines():
        cells = line.split()
        for i in range(len(cells) - len(want) + 1):
            if cells[i : i + len(want)] == want:
                return line
    return None


def rows(output: str, *columns: str) -> list[str]:
    """Every line ``row`` would match."""
    return [ln for ln in output.splitlines() if row(ln, *columns) is not None]


def ports(items: Iterable[int | None]) -> str:
    """``[45082, 45094]`` -> ``45082, 45094``."""
    return ", ".join(str(p) for p in items if p is not None)


def header(stage: Stage, number: int, text: str) -> StepResult:
    """Print a step's title and what it is about; a fresh result to fill."""
    stage.write(f"\n== Step {number} of {STEPS}: {TITLES[number]} ==\n{text}\n\n")
    return StepResult(number, TITLES[number])


def explain(stage: Stage, text: str) -> None:
    """The one-line explanation after a command's output."""
    stage.write(f"-> {text}\n\n")
