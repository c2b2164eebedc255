"""WorkerTurns: one worker at a time does an action's Python work, except while it steps aside."""

from __future__ import annotations

import threading

import pytest

from mb.sandbox.base import WorkerTurns


def test_a_second_worker_waits_for_the_turn_and_gets_it_when_the_first_steps_aside() -> None:
    turns = WorkerTurns()
    order: list[str] = []
    second_started = threading.Event()

    def second() -> None:
        second_started.set()
        with turns:
            order.append("second")

    with turns:
        order.append("first")
        helper = threading.Thread(target=second)
        helper.start()
        second_started.wait(5)
        helper.join(0.2)
        assert helper.is_alive() and order == ["first"]  # waiting for the turn
        with turns.stepped_aside():
            helper.join(5)
            assert order == ["first", "second"]
        order.append("first again")
    assert order == ["first", "second", "first again"]


def test_stepping_aside_without_the_turn_does_nothing() -> None:
    turns = WorkerTurns()
    with turns.stepped_aside():
        pass  # a sandbox run on its own (no executor): no error
    with turns:  # and the turn is still free
        pass


def test_the_turn_is_taken_back_when_the_work_outside_it_fails() -> None:
    turns = WorkerTurns()
    with turns:
        with pytest.raises(OSError), turns.stepped_aside():
            raise OSError("the process could not start")
        got_it = threading.Event()
        other = threading.Thread(target=lambda: (turns.__enter__(), got_it.set(), turns.__exit__()))
        other.start()
        assert not got_it.wait(0.2)  # still ours
    other.join(5)
    assert got_it.is_set()
