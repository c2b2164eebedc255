"""What a failed Python action's `data.error` says (`executor._exit_message`).

The worker (`mb.sandbox.worker`) reports the failure on stderr, last: `error:
<message>` for an `mb.ActionError`, else a traceback. The tails here are made
by Python's own `traceback` module, so they follow the running version's format.
"""

from __future__ import annotations

import traceback

import pytest

from mb.executor import EXIT_PERMANENT, _exit_message, _python_failure
from mb.sandbox.base import STDERR_TAIL_LINES


class QuotaExceeded(Exception):
    pass


def _traceback_of(exc: BaseException, depth: int = 0) -> str:
    # Two functions calling each other: Python folds repeats of one identical frame.
    def ping(n: int) -> None:
        if n:
            pong(n - 1)
        raise exc

    def pong(n: int) -> None:
        if n:
            ping(n - 1)
        raise exc

    try:
        ping(depth)
    except BaseException:  # noqa: BLE001 - formatting whatever was raised
        return traceback.format_exc()
    raise AssertionError("unreachable")


def _tail(text: str) -> str:
    """What the sandbox keeps of stderr: the last lines only."""
    return "\n".join(text.splitlines()[-STDERR_TAIL_LINES:])


def test_action_error_message():
    assert _python_failure("error: transient failure 1") == "transient failure 1"
    assert _exit_message("call", 75, "error: transient failure 1") == "transient failure 1"


def test_action_error_after_the_action_printed_a_traceback_of_its_own():
    logged = _traceback_of(ValueError("handled and logged"))
    stderr = f"contacting the server\n{logged}error: gave up after the ValueError\n"
    assert _python_failure(stderr) == "gave up after the ValueError"


def test_not_retryable_is_said():
    error = _exit_message("call", EXIT_PERMANENT, "error: HTTP 400: bad workflow")
    assert error == "HTTP 400: bad workflow (not retryable)"


@pytest.mark.parametrize(("exc", "expected"), [
    (ValueError("bad value 7"), "ValueError: bad value 7"),
    (KeyError("width"), "KeyError: 'width'"),
    (QuotaExceeded("monthly quota used up"), "QuotaExceeded: monthly quota used up"),
    (RuntimeError(), "RuntimeError"),
    (QuotaExceeded("first line\nsecond line"), "QuotaExceeded: first line"),
])
def test_other_exception_is_type_and_message(exc, expected):
    assert _python_failure(_traceback_of(exc)) == expected


def test_traceback_whose_header_the_tail_cut_off():
    text = _traceback_of(ValueError("deep down"), depth=30)
    assert "Traceback (most recent call last)" not in _tail(text)
    assert _python_failure(_tail(text)) == "ValueError: deep down"


def test_chained_exceptions_give_the_last_one():
    try:
        try:
            raise KeyError("x")
        except KeyError as inner:
            raise QuotaExceeded("while handling") from inner
    except QuotaExceeded:
        text = traceback.format_exc()
    assert _python_failure(text) == "QuotaExceeded: while handling"


def test_earlier_error_lines_do_not_hide_the_traceback():
    stderr = "error: a warning the action printed\n" + _traceback_of(ValueError("real"))
    assert _python_failure(stderr) == "ValueError: real"


def test_long_message_is_shortened():
    error = _python_failure("error: " + "x" * 5000)
    assert len(error) <= 500 and error.endswith("...")


def test_without_a_message_the_generic_text_stays():
    assert _python_failure("") == ""
    assert _exit_message("call", 1, "Segmentation fault") == "Python action failed"
    assert _exit_message("call", -11, "") == "killed by signal 11"
    assert _exit_message("run", 1, "error: not read for commands") == \
        "command exited with status 1"
