"""The problems of an uploaded file, as a researcher sees them: the first few in full, the
rest counted.

A file of a million bad lines would otherwise become a million messages, a page of tens of
megabytes and a worker holding gigabytes. Every file reader here (explanations, Prolific's
demographics) keeps at most ``PROBLEMS_SHOWN`` problems and stops checking once it has that
many: the file is refused whatever the remaining lines hold, so it only counts them.
"""

from __future__ import annotations

from collections.abc import Iterable

PROBLEMS_SHOWN = 50


class ProblemList:
    """Problems in the order found; the first ``limit`` are kept, later ones only counted."""

    def __init__(self, limit: int = PROBLEMS_SHOWN) -> None:
        self.limit = limit
        self.shown: list[str] = []
        self.more = 0
        # Lines left unread after the list filled (the file was refused by then).
        self.unchecked_lines = 0

    def add(self, problem: str) -> None:
        if len(self.shown) < self.limit:
            self.shown.append(problem)
        else:
            self.more += 1

    def extend(self, problems: Iterable[str]) -> None:
        for problem in problems:
            self.add(problem)

    @property
    def full(self) -> bool:
        return len(self.shown) >= self.limit

    def __bool__(self) -> bool:
        return bool(self.shown)

    def skip_rest(self, lines: Iterable[str]) -> None:
        """Count the non-blank lines left in ``lines`` without checking them."""
        self.unchecked_lines += sum(1 for line in lines if line.strip())

    def messages(self) -> list[str]:
        """The kept problems, then one line for each kind of remainder."""
        messages = list(self.shown)
        if self.more:
            messages.append(f"… and {self.more} more problem{'s' if self.more != 1 else ''}")
        if self.unchecked_lines:
            count = self.unchecked_lines
            messages.append(
                f"… and {count} more line{'s' if count != 1 else ''} not checked: the first "
                f"{self.limit} problems are listed and the file is refused already"
            )
        return messages

    def summary(self, what: str) -> str:
        """'3 problems in {what}', or 'at least 50 …' when lines were left unchecked."""
        count = len(self.shown) + self.more
        plural = "s" if count != 1 else ""
        at_least = "at least " if self.unchecked_lines else ""
        return f"{at_least}{count} problem{plural} in {what}"


class FileProblemsError(Exception):
    """A file cannot be imported; ``errors`` lists its problems as 'line N: …', capped."""

    what = "the file"

    def __init__(self, problems: ProblemList | list[str]) -> None:
        if not isinstance(problems, ProblemList):
            listed = ProblemList(limit=max(PROBLEMS_SHOWN, len(problems)))
            listed.extend(problems)
            problems = listed
        self.problems = problems
        self.errors = problems.messages()
        super().__init__(f"{problems.summary(self.what)}:\n" + "\n".join(self.errors))

    @property
    def summary(self) -> str:
        return self.problems.summary(self.what)
