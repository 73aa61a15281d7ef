"""Problems found in the user's data or configuration, and how they are reported."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one file: what is wrong and what to do about it.

    Parameters
    ----------
    severity : {"error", "warning"}
        Errors stop the workflow; warnings are reported and the run goes on.
    file : str
        The file (or folder) the problem is about, as the user named it.
    code : str
        A short stable identifier of the kind of problem, e.g. ``"float-labels"``.
    what : str
        What is wrong, in words.
    fix : str
        What the user should do.
    """

    severity: str
    file: str
    code: str
    what: str
    fix: str

    def format(self) -> str:
        return f"{self.file}: {self.what}\n    fix: {self.fix}"


def error(file, code: str, what: str, fix: str) -> Problem:
    return Problem(ERROR, str(file), code, what, fix)


def warning(file, code: str, what: str, fix: str) -> Problem:
    return Problem(WARNING, str(file), code, what, fix)


def errors(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == ERROR]


def warnings(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == WARNING]


def format_report(problems: list[Problem], title: str) -> str:
    """One message listing every problem, errors first, each with its file and its fix."""
    errs, warns = errors(problems), warnings(problems)
    files = len({p.file for p in errs})
    lines = [f"{title}: {len(errs)} error(s) in {files} file(s), {len(warns)} warning(s)."]
    for heading, group in (("ERRORS", errs), ("WARNINGS", warns)):
        if group:
            lines.append(f"{heading}")
            lines.extend("  " + p.format() for p in group)
    return "\n".join(lines)
