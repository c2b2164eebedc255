"""Exceptions that carry a user's mistake to `cli.py`, and the exit codes.

Only `UserError` (and subclasses) is turned into one line on stderr by the
CLI; anything else escaping is a bug in mb and shows a traceback.
"""

from __future__ import annotations

import enum
from typing import NamedTuple


class ExitCode(enum.IntEnum):
    OK = 0  #: the build (or command) succeeded
    BUILD_FAILED = 1  #: an action failed or a source input is missing
    USAGE_ERROR = 2  #: bad command line, BUILD.toml, MB.toml, label, rule or a cycle
    AWAITING_REVIEW = 3  #: the build stopped at a review gate
    INTERRUPTED = 130  #: Ctrl-C or SIGTERM


class Location(NamedTuple):
    """Where a mistake is: a workspace-relative (or given) path, 1-based line and column.

    A NamedTuple, not an attrs class: errors are imported on the no-op fast path.
    """

    path: str
    line: int | None = None
    col: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return self.path
        if self.col is None:
            return f"{self.path}:{self.line}"
        return f"{self.path}:{self.line}:{self.col}"


class UserError(Exception):
    """A mistake the user can fix; printed as `location: message`, exit code 2."""

    exit_code: ExitCode = ExitCode.USAGE_ERROR

    def __init__(self, message: str, location: Location | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.location = location

    def __str__(self) -> str:
        if self.location is None:
            return self.message
        return f"{self.location}: {self.message}"


class LabelError(UserError):
    """A malformed label, pattern or path."""


class BuildFileError(UserError):
    """A problem in a BUILD.toml (syntax, unknown rule or attribute, bad value)."""


class RuleError(BuildFileError):
    """Raised by a rule implementation about its target's attributes (`mb.RuleError`).

    The engine adds the target's BUILD.toml location: that of `attribute`
    when the rule names the attribute at fault (`attribute="cmd"`), else the
    target's `[name]` line.
    """

    def __init__(self, message: str, location: Location | None = None, *,
                 attribute: str | None = None) -> None:
        super().__init__(message, location)
        self.attribute = attribute


class ConfigError(UserError):
    """A problem in MB.toml or in a command-line option."""


class PluginError(UserError):
    """A plugin that cannot be used (duplicate rule, bad hook result)."""


class CycleError(UserError):
    """A dependency cycle; `labels` holds the cycle in order, first label repeated last."""

    def __init__(self, labels: list[str], location: Location | None = None) -> None:
        self.labels = labels
        super().__init__("dependency cycle: " + " -> ".join(labels), location)


class MultipleErrors(UserError):
    """Several mistakes found in one pass; each is printed on its own line."""

    def __init__(self, errors: list[UserError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


class BuildFailed(Exception):
    """The build ran and failed (exit 1); the reporter has already shown why."""


class ActionError(Exception):
    """Raised by a Python action (`ctx.call`) to fail with a clean message.

    `retryable=False` marks failures that a retry cannot fix (a 4xx answer, a
    workflow the server rejects), so `retries` is not spent on them.
    """

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable
