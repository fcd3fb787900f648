"""The rules engine's errors, converted from library errors at the boundary that meets them.

RulesError
├── RuleFileError           a rules, notification or inventory file that cannot be used;
│                           carries every problem found, each with file:line
└── NotifyError             a receiver did not take a notification
    (retryable: worth trying again later — a timeout, a 5xx — or not: a 4xx, a bad URL)
"""

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem in a file, at a line (1-based; 0 when the whole file is at fault)."""

    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.message}"


class RulesError(Exception):
    """Anything the rules engine raises on purpose."""


class RuleFileError(RulesError):
    """A file that cannot be used, with every problem found in it."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class NotifyError(RulesError):
    """A receiver did not take a notification."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable
