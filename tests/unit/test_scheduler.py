"""The scheduler (`mb.scheduler`) with a fake executor: order, -j, pools, failures, interrupts.

No sleeps: actions that must overlap are held in the fake executor, and the
test releases them one at a time, each time only after every worker of the
scheduler is idle or holding a held action. Concurrency is counted inside
the fake `execute`, so a limit that is exceeded even briefly is seen.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from mb import scheduler as scheduler_module
from mb.actions import Action, with_static_digest
from mb.cache import ActionResult
from mb.context import ActionSpec
from mb.digest import digest_bytes
from mb.errors import ConfigError
from mb.executor import MissingInputs, Outcome
from mb.labels import Label
from mb.sandbox.base import WorkerTurns
from mb.scheduler import Pools, Scheduler, SchedulerOptions, check_pools

WAIT = 10.0  # seconds; only reached when a test is about to fail


def make_action(index: int, name: str, inputs: Iterable[str] = (),
                outputs: Iterable[str] | None = None,
                resources: Mapping[str, int] | None = None) -> Action:
    spec = ActionSpec(
        kind="run", argv=("true",), function=None, params={}, inputs=tuple(inputs),
        outputs=tuple(outputs if outputs is not None else (f"p/{name}.out",)), tools=(),
        env=(), secret_env=(), resources=tuple(sorted((resources or {}).items())),
        timeout=None, retries=0, description=name)
    return with_static_digest(Action(index=index, owner=Label("p", name), spec=spec,
                                     rule="genrule", rule_version="1", plugin="mb",
                                     plugin_version="0", tags=()))


def producers_of(actions: Sequence[Action]) -> dict[str, Action]:
    return {path: a for a in actions for path in a.spec.outputs}


def output_digest(path: str) -> str:
    return digest_bytes(path.encode())


class FakeExecutor:
    """The interface the Scheduler uses, recording what happens; `hold` keeps actions running."""

    def __init__(self, sources: Mapping[str, str] | None = None, hold: bool = False,
                 failing: Iterable[str] = (), raising: Iterable[str] = (),
                 cached: Iterable[str] = ()) -> None:
        self.sources = dict(sources or {})
        self.root = "/nonexistent-workspace"  # messages look for directories under it
        self.hold = hold
        self.failing = set(failing)
        self.raising = set(raising)
        self.cached = set(cached)
        self.kills = 0
        self.sandbox = SimpleNamespace(registry=SimpleNamespace(kill_all=self._kill_all))
        self.turns = WorkerTurns()  # as the Executor's: the scheduler keys in turn
        self.cond = threading.Condition()
        self.started: list[str] = []
        self.finished: list[str] = []
        self.released: set[str] = set()
        self.executed_inputs: dict[str, dict[str, str]] = {}
        self.materialized: list[dict[str, str]] = []
        self.running = 0
        self.max_running = 0
        self.pool_running: dict[str, int] = {}
        self.pool_max: dict[str, int] = {}
        #: Set when an action starts (see `drive`).
        self.probe: threading.Event | None = None

    # --- the interface --------------------------------------------------------------

    def input_digests(self, action: Action, produced: Mapping[str, str],
                      before_hashing: Callable[[], None] | None = None) -> dict[str, str]:
        found, missing = {}, []
        for path in action.spec.inputs:
            digest = produced.get(path) or self.sources.get(path)
            if digest is None:
                missing.append(path)
            else:
                found[path] = digest
        if missing:
            raise MissingInputs(missing)
        return found

    def tool_digests(self, action: Action,
                     before_hashing: Callable[[], None] | None = None) -> dict[str, str]:
        return {}

    def lookup(self, action: Action, key: str) -> ActionResult | None:
        if action.owner.name in self.cached:
            return ActionResult(outputs={p: output_digest(p) for p in action.spec.outputs})
        return None

    def materialize(self, outputs: Mapping[str, str]) -> None:
        self.materialized.append(dict(outputs))

    def execute(self, action: Action, key: str, inputs: Mapping[str, str],
                provisional: bool) -> Outcome:
        name = action.owner.name
        with self.cond:
            self.started.append(name)
            self.executed_inputs[name] = dict(inputs)
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            for pool, units in action.spec.resources:
                self.pool_running[pool] = self.pool_running.get(pool, 0) + units
                self.pool_max[pool] = max(self.pool_max.get(pool, 0), self.pool_running[pool])
            self.cond.notify_all()
            if self.probe is not None:
                self.probe.set()
            if self.hold:
                assert self.cond.wait_for(lambda: name in self.released, WAIT), name
            self.running -= 1
            for pool, units in action.spec.resources:
                self.pool_running[pool] -= units
            self.finished.append(name)
        if name in self.raising:
            raise RuntimeError("boom")
        if name in self.failing:
            return Outcome(action, "failed", key, error="command exited with status 1")
        return Outcome(action, "executed", key,
                       outputs={p: output_digest(p) for p in action.spec.outputs},
                       provisional=provisional, input_digests=dict(inputs))

    def _kill_all(self) -> None:
        with self.cond:
            self.kills += 1
            self.released.update(self.started)
            self.cond.notify_all()

    # --- test controls --------------------------------------------------------------

    def release(self, name: str) -> None:
        with self.cond:
            self.released.add(name)
            self.cond.notify_all()

    def started_unreleased(self) -> list[str]:
        return [n for n in self.started if n not in self.released]


class RecordingRun(scheduler_module._Run):
    """The scheduler's run state; `probe` is set whenever a worker goes idle."""

    last: RecordingRun | None = None
    probe = threading.Event()

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        RecordingRun.last = self

    def wait_for_work(self) -> None:
        RecordingRun.probe.set()
        super().wait_for_work()


def new_scheduler(executor: FakeExecutor, jobs: int, **options: Any
                  ) -> tuple[Scheduler, list[Outcome]]:
    reported: list[Outcome] = []
    scheduler = Scheduler(executor, SchedulerOptions(jobs=jobs, **options),  # type: ignore[arg-type]
                          on_outcome=reported.append)
    return scheduler, reported


def drive(scheduler: Scheduler, executor: FakeExecutor, actions: Sequence[Action],
          monkeypatch: pytest.MonkeyPatch, stop_after: int | None = None) -> dict[int, Outcome]:
    """Run with held actions, releasing the earliest started one each time the scheduler is quiet.

    Quiet: every worker is idle, holds a held action, or has stopped, so
    nothing changes until the test acts; that is when the counts inside the
    fake executor are checked against the limits. With `stop_after`,
    interrupt the scheduler once that many actions have started.
    """
    monkeypatch.setattr(scheduler_module, "_Run", RecordingRun)
    probe = RecordingRun.probe
    executor.probe = probe
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["outcomes"] = scheduler.run(actions, producers_of(actions))
        except BaseException as exc:  # reported in the test thread
            result["error"] = exc
        finally:
            probe.set()

    def quiet() -> bool:
        state = RecordingRun.last
        if state is None:
            return False
        with state.cond:  # no worker is between two states while the test holds this
            with executor.cond:
                held = len(executor.started_unreleased())
            return state.idle + held + state.stopped == state.workers

    RecordingRun.last = None
    thread = threading.Thread(target=run)
    thread.start()
    while True:
        probe.clear()
        if "outcomes" in result or "error" in result:
            break
        if not quiet():
            assert probe.wait(WAIT), "the scheduler never became quiet"
            continue
        unreleased = executor.started_unreleased()
        if stop_after is not None and len(executor.started) >= stop_after:
            scheduler.interrupt()
            break
        if not unreleased:  # every worker has stopped: the run is returning
            break
        executor.release(unreleased[0])
    thread.join(WAIT)
    assert not thread.is_alive()
    if "error" in result:
        raise result["error"]
    return result["outcomes"]


def statuses(outcomes: Mapping[int, Outcome], actions: Sequence[Action]) -> dict[str, str]:
    return {a.owner.name: outcomes[a.index].status for a in actions}


# --- ordering -----------------------------------------------------------------------


def test_dependencies_finish_before_dependents_start() -> None:
    # a -> b -> d, a -> c -> d, and e independent; listed dependents first
    a = make_action(0, "a", inputs=["p/src.txt"])
    b = make_action(1, "b", inputs=["p/a.out"])
    c = make_action(2, "c", inputs=["p/a.out", "p/src.txt"])
    d = make_action(3, "d", inputs=["p/b.out", "p/c.out"])
    e = make_action(4, "e")
    actions = [d, c, b, a, e]
    executor = FakeExecutor(sources={"p/src.txt": "s" * 64})
    scheduler, reported = new_scheduler(executor, jobs=4)
    outcomes = scheduler.run(actions, producers_of(actions))
    assert statuses(outcomes, actions) == dict.fromkeys("dcbae", "executed")
    edges = [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]
    for before, after in edges:
        assert executor.finished.index(before) < executor.started.index(after)
    assert sorted(o.action.owner.name for o in reported) == list("abcde")
    assert executor.executed_inputs["c"] == {"p/a.out": output_digest("p/a.out"),
                                             "p/src.txt": "s" * 64}
    assert executor.executed_inputs["d"] == {"p/b.out": output_digest("p/b.out"),
                                             "p/c.out": output_digest("p/c.out")}


def test_threads_switch_often_while_actions_run_and_as_before_after() -> None:
    import sys

    seen: list[float] = []

    class Recording(FakeExecutor):
        def execute(self, action: Action, key: str, inputs: Mapping[str, str],
                    provisional: bool) -> Outcome:
            seen.append(sys.getswitchinterval())
            return super().execute(action, key, inputs, provisional)

    before = sys.getswitchinterval()
    actions = [make_action(0, "a"), make_action(1, "b", inputs=["p/a.out"])]
    scheduler, _ = new_scheduler(Recording(), jobs=2)
    scheduler.run(actions, producers_of(actions))
    assert seen == [scheduler_module.SWITCH_INTERVAL_S] * 2
    assert sys.getswitchinterval() == before


def test_keying_an_action_does_not_hold_back_the_other_workers() -> None:
    """Keying hashes inputs (slow for big files) without the scheduler's lock, and a
    large file without the worker's turn (`mb.digest.digest_and_stat`): while `slow`
    is keyed, the other worker runs `b`, records it and runs `c` after it."""
    slow, b = make_action(0, "slow"), make_action(1, "b")
    c = make_action(2, "c", inputs=["p/b.out"])
    c_started = threading.Event()

    class SlowKeying(FakeExecutor):
        def input_digests(self, action: Action, produced: Mapping[str, str],
                          before_hashing: Callable[[], None] | None = None) -> dict[str, str]:
            if action.owner.name == "slow":
                assert before_hashing is not None
                before_hashing()  # a file the stat cache does not know: hashed,
                with self.turns.stepped_aside():  # a large one outside the turn
                    assert c_started.wait(WAIT), "keying held the other worker back"
            return super().input_digests(action, produced)

        def execute(self, action: Action, key: str, inputs: Mapping[str, str],
                    provisional: bool) -> Outcome:
            if action.owner.name == "c":
                c_started.set()
            return super().execute(action, key, inputs, provisional)

    executor = SlowKeying()
    scheduler, _ = new_scheduler(executor, jobs=2)
    outcomes = scheduler.run([slow, b, c], producers_of([slow, b, c]))
    assert statuses(outcomes, [slow, b, c]) == dict.fromkeys(["slow", "b", "c"], "executed")
    assert executor.started.index("c") < executor.started.index("slow")


def test_cache_hits_are_keyed_by_one_worker_at_a_time() -> None:
    """Keying from known stats is Python under the GIL: two workers doing it at once
    only hand the GIL back and forth, so the second one waits (scheduler._key_unlocked)."""
    actions = [make_action(i, f"t{i}") for i in range(40)]
    lock = threading.Lock()
    keying = [0, 0]  # now, most at once

    class CountingKeying(FakeExecutor):
        def input_digests(self, action: Action, produced: Mapping[str, str],
                          before_hashing: Callable[[], None] | None = None) -> dict[str, str]:
            with lock:
                keying[0] += 1
                keying[1] = max(keying)
            time.sleep(0.002)  # a system call: the GIL is free for the other worker
            with lock:
                keying[0] -= 1
            return super().input_digests(action, produced)

    executor = CountingKeying(cached=[a.owner.name for a in actions])
    scheduler, _ = new_scheduler(executor, jobs=2)
    outcomes = scheduler.run(actions, producers_of(actions))
    assert set(statuses(outcomes, actions).values()) == {"cached"}
    assert keying[1] == 1


def test_long_chain_runs_in_order_with_one_job() -> None:
    actions = [make_action(0, "n0")] + [
        make_action(i, f"n{i}", inputs=[f"p/n{i - 1}.out"]) for i in range(1, 30)]
    executor = FakeExecutor()
    scheduler, _ = new_scheduler(executor, jobs=1)
    outcomes = scheduler.run(list(reversed(actions)), producers_of(actions))
    assert executor.started == [f"n{i}" for i in range(30)]
    assert all(o.status == "executed" for o in outcomes.values())


def test_cached_actions_are_not_executed_and_feed_their_dependents() -> None:
    a = make_action(0, "a")
    b = make_action(1, "b", inputs=["p/a.out"])
    executor = FakeExecutor(cached=["a"])
    scheduler, _ = new_scheduler(executor, jobs=2)
    outcomes = scheduler.run([a, b], producers_of([a, b]))
    assert statuses(outcomes, [a, b]) == {"a": "cached", "b": "executed"}
    assert executor.started == ["b"]
    assert executor.materialized == [{"p/a.out": output_digest("p/a.out")}]
    assert executor.executed_inputs["b"] == {"p/a.out": output_digest("p/a.out")}
    assert outcomes[0].key and outcomes[0].key == outcomes[0].key.lower()


# --- -j and resource pools ----------------------------------------------------------


@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_jobs_limit_is_reached_and_never_exceeded(jobs: int,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    actions = [make_action(i, f"t{i}") for i in range(7)]
    executor = FakeExecutor(hold=True)
    scheduler, _ = new_scheduler(executor, jobs=jobs)
    outcomes = drive(scheduler, executor, actions, monkeypatch)
    assert all(o.status == "executed" for o in outcomes.values())
    assert executor.max_running == jobs
    assert sorted(executor.started) == sorted(a.owner.name for a in actions)


def test_gpu_pool_of_one_serialises_gpu_actions(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = [make_action(i, f"gpu{i}", resources={"gpu": 1}) for i in range(4)]
    cpu = [make_action(4 + i, f"cpu{i}") for i in range(2)]
    actions = [*gpu, *cpu]
    executor = FakeExecutor(hold=True)
    scheduler, _ = new_scheduler(executor, jobs=4, pools={"gpu": 1})
    outcomes = drive(scheduler, executor, actions, monkeypatch)
    assert all(o.status == "executed" for o in outcomes.values())
    assert executor.pool_max == {"gpu": 1}
    assert executor.max_running == 3  # one gpu action next to both cpu ones
    gpu_order = [n for n in executor.started if n.startswith("gpu")]
    for earlier, later in zip(gpu_order, gpu_order[1:]):
        assert executor.finished.index(earlier) < executor.started.index(later)


def test_pool_units_add_up(monkeypatch: pytest.MonkeyPatch) -> None:
    actions = [make_action(0, "big", resources={"api": 2}),
               make_action(1, "big2", resources={"api": 2}),
               make_action(2, "small", resources={"api": 1}),
               make_action(3, "small2", resources={"api": 1})]
    executor = FakeExecutor(hold=True)
    scheduler, _ = new_scheduler(executor, jobs=4, pools={"api": 3})
    drive(scheduler, executor, actions, monkeypatch)
    assert executor.pool_max == {"api": 3}


def test_undeclared_pool_has_one_unit(monkeypatch: pytest.MonkeyPatch) -> None:
    actions = [make_action(i, f"t{i}", resources={"tpu": 1}) for i in range(3)]
    executor = FakeExecutor(hold=True)
    scheduler, _ = new_scheduler(executor, jobs=3)
    drive(scheduler, executor, actions, monkeypatch)
    assert executor.pool_max == {"tpu": 1}
    assert executor.max_running == 1


def test_check_pools_rejects_an_oversized_request() -> None:
    action = make_action(0, "render", resources={"gpu": 2})
    with pytest.raises(ConfigError) as info:
        check_pools([action], Pools({"gpu": 1}))
    assert info.value.message == (
        "//p:render needs 2 units of resource 'gpu' but the pool has 1; "
        "raise it in MB.toml [resources] gpu = 2")
    with pytest.raises(ConfigError) as info:
        check_pools([make_action(1, "x", resources={"api": 3})], Pools({}))
    assert info.value.message == (
        "//p:x needs 3 units of resource 'api' but the pool has 1; "
        "raise it in MB.toml [resources] api = 3")
    check_pools([action], Pools({"gpu": 2}))


def test_run_refuses_an_oversized_request_before_running_anything() -> None:
    actions = [make_action(0, "ok"), make_action(1, "huge", resources={"gpu": 5})]
    executor = FakeExecutor()
    scheduler, _ = new_scheduler(executor, jobs=2, pools={"gpu": 4})
    with pytest.raises(ConfigError):
        scheduler.run(actions, producers_of(actions))
    assert executor.started == []


def test_pools_helper() -> None:
    pools = Pools({"gpu": 2})
    assert pools.size("gpu") == 2 and pools.size("other") == 1
    assert pools.fits([("gpu", 2)]) and not pools.fits([("gpu", 3)])
    pools.take([("gpu", 1), ("other", 1)])
    assert pools.fits([("gpu", 1)]) and not pools.fits([("gpu", 2)])
    assert not pools.fits([("other", 1)])
    pools.give([("gpu", 1), ("other", 1)])
    assert pools.fits([("gpu", 2), ("other", 1)])


# --- failures -----------------------------------------------------------------------


def failing_graph() -> list[Action]:
    return [make_action(0, "a"),                           # fails
            make_action(1, "c"),                           # independent
            make_action(2, "b", inputs=["p/a.out"]),       # needs a
            make_action(3, "d", inputs=["p/b.out"])]       # needs b


def test_stop_on_failure_skips_everything_not_started() -> None:
    actions = failing_graph()
    executor = FakeExecutor(failing=["a"])
    scheduler, reported = new_scheduler(executor, jobs=1)
    outcomes = scheduler.run(actions, producers_of(actions))
    assert statuses(outcomes, actions) == {"a": "failed", "c": "skipped", "b": "skipped",
                                           "d": "skipped"}
    assert executor.started == ["a"]
    assert outcomes[0].error == "command exited with status 1"
    assert sorted(o.action.owner.name for o in reported) == ["a", "b", "c", "d"]


def test_keep_going_runs_independent_actions_and_skips_dependents() -> None:
    actions = failing_graph()
    executor = FakeExecutor(failing=["a"])
    scheduler, _ = new_scheduler(executor, jobs=1, keep_going=True)
    outcomes = scheduler.run(actions, producers_of(actions))
    assert statuses(outcomes, actions) == {"a": "failed", "c": "executed", "b": "skipped",
                                           "d": "skipped"}
    assert executor.started == ["a", "c"]
    assert outcomes[2].error == "//p:a failed"
    assert outcomes[3].error == "//p:b failed"


def test_running_actions_finish_after_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    actions = [make_action(0, "bad"), make_action(1, "slow"), make_action(2, "later")]
    executor = FakeExecutor(hold=True, failing=["bad"])
    scheduler, _ = new_scheduler(executor, jobs=2)
    outcomes = drive(scheduler, executor, actions, monkeypatch)
    assert statuses(outcomes, actions) == {"bad": "failed", "slow": "executed",
                                           "later": "skipped"}


def test_an_exception_in_execute_fails_only_that_action() -> None:
    actions = [make_action(0, "a"), make_action(1, "b")]
    executor = FakeExecutor(raising=["a"])
    scheduler, _ = new_scheduler(executor, jobs=1, keep_going=True)
    outcomes = scheduler.run(actions, producers_of(actions))
    assert statuses(outcomes, actions) == {"a": "failed", "b": "executed"}
    assert outcomes[0].error == "internal error: RuntimeError('boom')"
    assert "RuntimeError: boom" in outcomes[0].stderr_tail


def test_a_bug_while_recording_an_outcome_stops_the_run_and_is_raised() -> None:
    actions = [make_action(i, f"t{i}") for i in range(6)]
    executor = FakeExecutor()

    def broken(outcome: Outcome) -> None:
        raise KeyError("bug")

    scheduler = Scheduler(executor, SchedulerOptions(jobs=3), on_outcome=broken)
    with pytest.raises(KeyError, match="bug"):
        scheduler.run(actions, producers_of(actions))
    assert len(executor.started) < len(actions)  # the other workers stopped too
    assert executor.kills == 1


def test_missing_source_fails_the_action_naming_file_and_target() -> None:
    a = make_action(0, "a", inputs=["p/there.txt", "p/gone.txt", "p/also.txt"])
    b = make_action(1, "b", inputs=["p/a.out"])
    executor = FakeExecutor(sources={"p/there.txt": "t" * 64})
    scheduler, _ = new_scheduler(executor, jobs=2, keep_going=True)
    outcomes = scheduler.run([a, b], producers_of([a, b]))
    assert statuses(outcomes, [a, b]) == {"a": "failed", "b": "skipped"}
    assert outcomes[0].error == ("missing source file p/gone.txt (needed by //p:a); "
                                 "missing source file p/also.txt (needed by //p:a)")
    assert executor.started == []


def test_missing_output_of_a_target_outside_the_build_is_named() -> None:
    outside = make_action(0, "outside")
    a = make_action(1, "a", inputs=["p/outside.out"])
    executor = FakeExecutor()
    scheduler, _ = new_scheduler(executor, jobs=1)
    outcomes = scheduler.run([a], {"p/outside.out": outside})
    assert outcomes[1].status == "failed"
    assert outcomes[1].error == "missing output of //p:outside p/outside.out (needed by //p:a)"


def test_placeholder_fills_a_missing_input_and_marks_provisional() -> None:
    a = make_action(0, "a", inputs=["p/missing.png"])
    b = make_action(1, "b", inputs=["p/a.out"])
    asked: list[tuple[str, str]] = []

    def placeholder(path: str, action: Action) -> str | None:
        asked.append((path, action.owner.name))
        return "9" * 64

    executor = FakeExecutor()
    scheduler, _ = new_scheduler(executor, jobs=1, placeholder=placeholder)
    outcomes = scheduler.run([a, b], producers_of([a, b]))
    assert asked == [("p/missing.png", "a")]
    assert statuses(outcomes, [a, b]) == {"a": "executed", "b": "executed"}
    assert outcomes[0].provisional and outcomes[1].provisional
    assert executor.executed_inputs["a"] == {"p/missing.png": "9" * 64}


def test_placeholder_that_cannot_help_fails_the_action() -> None:
    a = make_action(0, "a", inputs=["p/missing.xyz"])
    executor = FakeExecutor()
    scheduler, _ = new_scheduler(executor, jobs=1, placeholder=lambda path, action: None)
    outcomes = scheduler.run([a], producers_of([a]))
    assert (outcomes[0].status, outcomes[0].error) == ("failed", "missing input p/missing.xyz")


# --- interrupts ---------------------------------------------------------------------


def test_interrupt_kills_running_actions_and_starts_nothing_new(
        monkeypatch: pytest.MonkeyPatch) -> None:
    actions = [make_action(i, f"t{i}") for i in range(5)]
    executor = FakeExecutor(hold=True)
    scheduler, _ = new_scheduler(executor, jobs=2)
    outcomes = drive(scheduler, executor, actions, monkeypatch, stop_after=2)
    assert executor.kills == 1
    assert sorted(executor.started) == ["t0", "t1"]
    assert scheduler.interrupted.is_set()
    assert set(outcomes) == {a.index for a in actions}
    assert {o.status for o in outcomes.values()} == {"skipped"}


def test_interrupt_stops_idle_workers_too(monkeypatch: pytest.MonkeyPatch) -> None:
    # b waits for a: one of the two workers is idle when Ctrl-C comes.
    actions = [make_action(0, "a"), make_action(1, "b", inputs=["p/a.out"])]
    executor = FakeExecutor(hold=True)
    scheduler, reported = new_scheduler(executor, jobs=3)
    outcomes = drive(scheduler, executor, actions, monkeypatch, stop_after=1)
    assert executor.started == ["a"] and executor.kills == 1
    assert [o.error for o in outcomes.values()] == ["interrupted", "interrupted"]
    assert reported == []


def test_interrupt_before_run_runs_nothing() -> None:
    actions = [make_action(i, f"t{i}") for i in range(3)]
    executor = FakeExecutor()
    scheduler, reported = new_scheduler(executor, jobs=2)
    scheduler.interrupt()
    outcomes = scheduler.run(actions, producers_of(actions))
    assert executor.started == []
    assert executor.kills == 1
    assert statuses(outcomes, actions) == dict.fromkeys(["t0", "t1", "t2"], "skipped")
    assert reported == []


def test_empty_run() -> None:
    executor = FakeExecutor()
    scheduler, reported = new_scheduler(executor, jobs=2)
    assert scheduler.run([], {}) == {}
    assert reported == [] and executor.kills == 0


def test_actions_that_can_never_run_are_reported_with_a_reason() -> None:
    a = make_action(0, "a", inputs=["p/b.out"])
    b = make_action(1, "b", inputs=["p/a.out"])
    executor = FakeExecutor()
    scheduler, _ = new_scheduler(executor, jobs=2)
    outcomes = scheduler.run([a, b], producers_of([a, b]))
    assert executor.started == []
    assert all(outcome.error for outcome in outcomes.values())
