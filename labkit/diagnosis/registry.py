"""The table of finding checks: each entry says what it needs, which codes it gives and which it explains.

    @finding("dead_units", codes={"dead_units"}, needs=Needs(probes=True),
             explains=[Explains({"underfitting"}, when=is_alarm)])
    def dead(ctx: Context) -> Finding | None: ...

A new diagnosis is one such entry; `runner.run_findings` runs the table in
order and hides a finding whose cause another one names (`explains`), so no
check needs to know about the others. Entries run in registration order,
which is also the report's order within a severity.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Collection, Iterable, Union

from ..registry import Registry
from .finding import Finding

if TYPE_CHECKING:
    from .runner import Context

ALL = "*"  # in Explains.codes: every code (of every other entry), notes included

CheckResultT = Union[Finding, None, Iterable[Finding]]


@dataclass(frozen=True)
class Needs:
    """What a check needs to judge anything; without it the check is not run (its `unjudged` note says so)."""

    probes: bool = False  # probe snapshots (probe.every > 0)
    steps: int = 0  # at least this many step rows
    val_epochs: int = 0  # at least this many epoch rows with a validation accuracy

    def met(self, ctx: "Context") -> bool:
        """True when the run has what this check needs."""
        return ((not self.probes or ctx.probes is not None) and ctx.run.n >= self.steps
                and len(ctx.run.val_epochs) >= self.val_epochs)


def always(f: Finding) -> bool:
    """Every finding of the entry explains."""
    return True


def is_alarm(f: Finding) -> bool:
    """Only an alarm explains (a warning is not strong enough to take the blame)."""
    return f.severity == "alarm"


def is_concern(f: Finding) -> bool:
    """An alarm or a warning explains; an "info" finding does not."""
    return f.severity in ("alarm", "warn")


@dataclass(frozen=True)
class Explains:
    """Findings of `codes` (from other entries) are hidden while this entry has a finding that passes `when`.

    `note(ctx)`, when given, is added to the explaining finding's evidence, so the numbers of the hidden
    finding still reach the reader under the cause that took the blame.
    """

    codes: Collection[str]  # codes it explains; ALL for every code
    when: Callable[[Finding], bool] = always
    but: Collection[str] = ()  # with ALL: codes still shown (they name the same cause)
    note: Callable[["Context"], str] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "codes", frozenset(self.codes))  # sets: `covers` is a lookup
        object.__setattr__(self, "but", frozenset(self.but))

    def covers(self, code: str) -> bool:
        """True when this rule hides findings of `code`."""
        return (ALL in self.codes or code in self.codes) and code not in self.but


@dataclass(frozen=True)
class FindingCheck:
    """One registered check: its function and what it declares about itself."""

    name: str
    run: Callable[["Context"], CheckResultT]
    codes: frozenset[str]  # every code it can give, "not_judged" included when it writes notes
    needs: Needs = Needs()
    explains: tuple[Explains, ...] = ()
    unjudged: Callable[["Context"], CheckResultT] | None = None  # the note(s) when `needs` are not met


class FindingRegistry(Registry[FindingCheck]):
    """The finding checks, in the order they run; entries can be removed (tests, experiments)."""

    def checks(self) -> list[FindingCheck]:
        """Every registered check, in registration order."""
        return [e.factory for e in self]

    def remove(self, name: str) -> None:
        """Unregister `name` (unknown names raise the error listing the registered ones)."""
        self.check(name)
        del self._entries[name]


FINDINGS = FindingRegistry("finding check")


def finding(name: str, *, codes: Collection[str], needs: Needs = Needs(), explains: Iterable[Explains] = (),
            unjudged: Callable[["Context"], CheckResultT] | None = None,
            help: str = "") -> Callable[[Callable[["Context"], CheckResultT]], Callable[["Context"], CheckResultT]]:
    """Decorator registering a finding check under `name` (see the module doc)."""

    def deco(fn: Callable[["Context"], CheckResultT]) -> Callable[["Context"], CheckResultT]:
        FINDINGS.add(name, FindingCheck(name, fn, frozenset(codes), needs, tuple(explains), unjudged),
                     help or (fn.__doc__ or "").strip().split("\n")[0])
        return fn

    return deco
