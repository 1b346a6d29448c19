"""Locations and the collected problems of a config load."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class Loc:
    """A place in a config file: 1-based line and column."""

    file: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        if self.line <= 0:
            return self.file
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Problem:
    """One error or warning, printed as `FILE:LINE:COL: rule NAME: message`."""

    loc: Loc
    message: str
    rule: str | None = None
    warning: bool = False

    def __str__(self) -> str:
        rule = f"rule {self.rule}: " if self.rule else ""
        kind = "warning: " if self.warning else ""
        return f"{self.loc}: {kind}{rule}{self.message}"


@dataclass
class Problems:
    """Collects every problem of a load so that all are reported at once."""

    items: list[Problem] = field(default_factory=list)
    rule: str | None = None  # the rule being parsed, named in its errors
    unreadable: set[Loc] = field(default_factory=set)  # values YAML could not read, already reported
    hidden: dict[str, str] = field(default_factory=dict)  # a value from the environment -> its "${VAR}"

    def error(self, loc: Loc, message: str) -> None:
        if loc in self.unreadable:
            return  # a value already reported as unreadable: no second error saying it is empty
        self.items.append(Problem(loc, self._hide(message), self.rule))

    def unreadable_value(self, loc: Loc, message: str) -> None:
        """An error about a YAML value that could not be read; later errors about its place are dropped."""
        self.items.append(Problem(loc, self._hide(message), self.rule))
        self.unreadable.add(loc)

    def warn(self, loc: Loc, message: str) -> None:
        self.items.append(Problem(loc, self._hide(message), self.rule, warning=True))

    def hide(self, value: str, var: str) -> None:
        """A value expanded from ${VAR} may be a secret: messages show `${VAR}` in its place, never the value."""
        if len(value) >= 4:  # shorter ones would replace ordinary words
            self.hidden[value] = self.hidden[repr(value)[1:-1]] = f"${{{var}}}"  # as is, and as !r shows it

    def _hide(self, message: str) -> str:
        for value in sorted(self.hidden, key=len, reverse=True):
            message = message.replace(value, self.hidden[value])
        return message

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.items if not p.warning]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.items if p.warning]


class ConfigError(Exception):
    """A config that cannot be used; carries every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems, key=lambda p: (p.loc, p.message))
        super().__init__("\n".join(str(p) for p in self.problems))
