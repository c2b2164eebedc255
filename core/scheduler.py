"""Runs a set of actions in dependency order: -j, resource pools, keep-going, interrupts.

An action becomes ready when every action producing one of its inputs has
finished. `jobs` worker threads each run one action at a time, so a worker
is a job slot; an action also holds whatever `resources` it declared, from
the named pools. Workers look actions up in the cache themselves (a stat
and a small read) and run only the misses.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Final

import attrs

from mb.actions import Action, action_key
from mb.errors import ConfigError
from mb.executor import Executor, MissingInputs, Outcome
from mb.profile import NullProfiler, Profiler


#: How often Python hands the GIL to another thread while actions run (see `Scheduler.run`).
SWITCH_INTERVAL_S: Final = 0.0005
#: How often the main thread looks for Ctrl-C while the workers run (see `Scheduler.interrupt`).
INTERRUPT_POLL_S: Final = 0.05


@attrs.frozen
class SchedulerOptions:
    jobs: int
    keep_going: bool = False
    pools: Mapping[str, int] = attrs.field(factory=dict)
    #: Called for each missing input when placeholders are on: path -> digest, or None.
    placeholder: Callable[[str, Action], str | None] | None = None
    #: Paths changed since the last build (mb watch): actions reading them go first.
    first: frozenset[str] = frozenset()


def usable_cpus() -> int:
    """The default of `-j`: the CPUs this process may run on (`taskset`, a container's
    cpuset), which `os.cpu_count()` ignores."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


class Pools:
    """Named counting pools; an undeclared pool has one unit."""

    def __init__(self, sizes: Mapping[str, int]) -> None:
        self.sizes = dict(sizes)
        self.used: dict[str, int] = {}

    def size(self, name: str) -> int:
        return self.sizes.get(name, 1)

    def fits(self, wants: Sequence[tuple[str, int]]) -> bool:
        return all(self.used.get(n, 0) + k <= self.size(n) for n, k in wants)

    def take(self, wants: Sequence[tuple[str, int]]) -> None:
        for name, units in wants:
            self.used[name] = self.used.get(name, 0) + units

    def give(self, wants: Sequence[tuple[str, int]]) -> None:
        for name, units in wants:
            self.used[name] -= units


def check_pools(actions: Sequence[Action], pools: Pools) -> None:
    """An action holding more units than its pool has could never run: a config error."""
    for action in actions:
        for name, units in action.spec.resources:
            if units > pools.size(name):
                raise ConfigError(
                    f"{action.owner} needs {units} units of resource '{name}' but the pool has "
                    f"{pools.size(name)}; raise it in MB.toml [resources] {name} = {units}")


class Scheduler:
    """Runs actions on `jobs` worker threads that schedule for themselves.

    There is no scheduling thread: a worker whose action ended records the
    outcome, readies the dependents, looks the next ready actions up in the
    cache (answering hits on the spot) and starts the first miss whose pools
    fit. A handoff to a scheduling thread and back cost two thread wake-ups
    and GIL handoffs an action, and with a third thread contending for the
    GIL, workers waited for it while their job slot stood idle (measured:
    clean `wide1k` about 16% faster, half the context switches;
    docs/performance.md). Shared state lives in `_Run`, under one lock.
    """

    def __init__(self, executor: Executor, options: SchedulerOptions,
                 on_outcome: Callable[[Outcome], None], profiler: Profiler | None = None) -> None:
        self.executor = executor
        self.profiler = profiler or NullProfiler()
        self.options = options
        self.on_outcome = on_outcome
        self.interrupted = threading.Event()
        #: Placeholders are made one at a time (a plugin hook need not be thread-safe).
        self._placeholder_lock = threading.Lock()

    def interrupt(self) -> None:
        """Stop starting actions and kill the running ones.

        Called from a signal handler, so it only sets a flag: a handler runs
        on the main thread between two bytecodes, possibly while that thread
        holds the very lock an `Event.set()` would take. The main thread
        polls the flag (`INTERRUPT_POLL_S`) and does the rest.
        """
        self.interrupted.set()

    def run(self, actions: Sequence[Action], producers: Mapping[str, Action],
            known: Mapping[str, str] | None = None) -> dict[int, Outcome]:
        """Run `actions`; returns an outcome for every one (skipped where it never ran).

        `known` gives the digests of outputs of actions not in `actions` that
        are up to date already (an incremental build runs only part of the graph).

        While it runs, Python switches threads every `SWITCH_INTERVAL_S`
        instead of every 5 ms. The workers spend their time blocked on a
        process; when one ends, its worker needs the GIL back, and another
        worker, staging or keying, could keep it for a whole interval: with
        5 ms, a worker often waited longer for the GIL than its action had
        run (measured: clean `wide1k` and `media` builds about 14% faster,
        docs/performance.md).
        """
        pools = Pools(self.options.pools)
        check_pools(actions, pools)
        previous = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        try:
            return self._run(_Run(self, actions, producers, known, pools))
        finally:
            sys.setswitchinterval(previous)

    def _run(self, run: _Run) -> dict[int, Outcome]:
        if run.actions:
            workers = [threading.Thread(target=run.work, name=f"mb-action_{n}", daemon=True)
                       for n in range(run.workers)]
            for worker in workers:
                worker.start()
            while not run.finished.wait(INTERRUPT_POLL_S):
                if self.interrupted.is_set():
                    break
            if self.interrupted.is_set():  # Ctrl-C, or a bug in a worker
                with run.cond:
                    run.wake_all()  # idle workers see the flag and stop
                self.executor.sandbox.registry.kill_all()
            for worker in workers:
                worker.join()
            if run.error is not None:
                raise run.error
        return run.outcomes_of_all()

    def _execute(self, item: _Keyed) -> Outcome:
        """Run one action on the calling worker; an exception fails only this action."""
        action = item.action
        try:
            with self.profiler.span(f"{action.owner} {action.description}", "action",
                                    key=item.key):
                return self.executor.execute(action, item.key, item.inputs, item.provisional)
        except OSError as exc:  # the disk, not the action: full, read-only, a file in the way
            return Outcome(action, "failed", item.key, error=describe_os_error(exc),
                           retryable=False)
        except Exception as exc:  # a bug: fail this action, keep the build sane
            import traceback

            return Outcome(action, "failed", item.key, error=f"internal error: {exc!r}",
                           stderr_tail=traceback.format_exc()[-2000:])

    def _blocked_by(self, action: Action, outcomes: Mapping[int, Outcome],
                    producers: Mapping[str, Action]) -> str | None:
        for path in action.spec.inputs:
            producer = producers.get(path)
            if producer is not None:
                outcome = outcomes.get(producer.index)
                if outcome is not None and not outcome.ok:
                    return str(producer.owner)
        return None

    def _missing_message(self, path: str, action: Action,
                         producers: Mapping[str, Action]) -> str:
        if path in producers:
            return f"missing output of {producers[path].owner} {path} (needed by {action.owner})"
        try:
            st = os.stat(os.path.join(self.executor.root, path))
        except FileNotFoundError:
            return f"missing source file {path} (needed by {action.owner})"
        except OSError as exc:  # a symlink loop, a name too long, no permission
            return f"cannot read source file {path}: {exc.strerror} (needed by {action.owner})"
        if stat.S_ISDIR(st.st_mode):
            return (f"{path} is a directory, not a file (needed by {action.owner}); "
                    "list the files it holds")
        if not stat.S_ISREG(st.st_mode):
            kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode)
                    else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                    else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
            return (f"source file {path} is {kind}, not a regular file (needed by "
                    f"{action.owner}); replace it with a file")
        return f"missing source file {path} (needed by {action.owner})"

    def _prepare(self, action: Action, produced: dict[str, str], provisional_paths: set[str],
                 producers: Mapping[str, Action],
                 before_slow_work: Callable[[], None] | None = None,
                 ) -> Outcome | tuple[str, dict[str, str], bool]:
        """Compute the key; answer from the cache if possible, else return what to run.

        `before_slow_work` is called before hashing a file or making a placeholder.
        """
        executor = self.executor
        provisional = any(p in provisional_paths for p in action.spec.inputs)
        try:
            inputs = executor.input_digests(action, produced, before_slow_work)
        except MissingInputs as missing:
            if self.options.placeholder is None:
                return Outcome(action, "failed", error="; ".join(
                    self._missing_message(path, action, producers) for path in missing.paths))
            filled = dict(produced)
            if before_slow_work is not None:
                before_slow_work()
            for path in missing.paths:
                with self._placeholder_lock:
                    digest = self.options.placeholder(path, action)
                if digest is None:
                    return Outcome(action, "failed", error=f"missing input {path}")
                filled[path] = digest
                provisional_paths.add(path)
            provisional = True
            inputs = executor.input_digests(action, filled)
        tools = executor.tool_digests(action, before_slow_work)
        key = action_key(action, inputs, tools)
        cached = executor.lookup(action, key)
        if cached is not None:
            executor.materialize(cached.outputs)
            # A cached action cost nothing this time: costs count what a build spent.
            return Outcome(action, "cached", key, outputs=cached.outputs,
                           metadata=cached.metadata, cost=None, provisional=provisional,
                           input_digests=inputs, tool_digests=tools)
        return key, inputs, provisional


@attrs.frozen
class _Keyed:
    """An action whose key is known and that missed the cache: it must run."""

    action: Action
    key: str
    inputs: dict[str, str]
    provisional: bool


class _Run:
    """The state of one `Scheduler.run`, shared by its workers; every field under `cond`.

    An action becomes ready when the actions producing its inputs have
    finished; `ready` is a stack, so the dependents of what just finished
    go next. `parked` holds keyed actions waiting for units of a named pool;
    they go before anything else once an action gives units back.
    """

    def __init__(self, scheduler: Scheduler, actions: Sequence[Action],
                 producers: Mapping[str, Action], known: Mapping[str, str] | None,
                 pools: Pools) -> None:
        self.scheduler = scheduler
        self.options = scheduler.options
        self.actions = actions
        self.producers = producers
        self.pools = pools
        #: The executor's turns (`WorkerTurns`): keying is taken in turn, as running is.
        self.turns = scheduler.executor.turns
        self.workers = max(1, min(self.options.jobs, len(actions)))
        self.cond = threading.Condition()
        wanted = {a.index for a in actions}
        self.waiting_on: dict[int, set[int]] = {}
        self.dependents: dict[int, list[Action]] = {a.index: [] for a in actions}
        for action in actions:
            needs = {producers[p].index for p in action.spec.inputs
                     if p in producers and producers[p].index in wanted}
            needs.discard(action.index)
            self.waiting_on[action.index] = needs
            for index in needs:
                self.dependents[index].append(action)
        self.ready = [a for a in reversed(actions) if not self.waiting_on[a.index]]
        first = self.options.first
        if first:  # a stack: the actions reading a changed path on top
            self.ready.sort(key=lambda a: any(p in first for p in a.spec.inputs))
        self.parked: deque[_Keyed] = deque()
        self.pools_given_back = False
        self.produced: dict[str, str] = dict(known or {})
        self.provisional_paths: set[str] = set()
        self.outcomes: dict[int, Outcome] = {}
        self.running = 0
        #: Workers keying an action from known stats, hashing nothing (`_key_unlocked`).
        self.keying_from_stats = 0
        self.failed = False
        self.idle = 0  # workers waiting in `cond` and not yet woken
        self.stopped = 0  # workers that have returned
        self.finished = threading.Event()  # set by the last worker to return
        self.error: BaseException | None = None

    # --- the worker loop ---------------------------------------------------------------

    def work(self) -> None:
        """One worker: take the next action to run, run it, record it; until none is left."""
        with self.cond:
            try:
                self._loop()
            except BaseException as exc:  # a bug: stop the run, re-raised by Scheduler.run
                self.error = self.error or exc
                self.scheduler.interrupt()
            finally:
                self.stopped += 1
                self.wake_all()
                if self.stopped == self.workers:
                    self.finished.set()

    def _loop(self) -> None:
        scheduler = self.scheduler
        while True:
            item = self._next()
            if item is None:
                if self.running == 0:
                    return  # nothing running can ready anything more
                self.wait_for_work()
                continue
            resources = item.action.spec.resources
            self.pools.take(resources)
            self.running += 1
            if self.idle and (self.ready or self.parked):
                self._wake_one()
            self.cond.release()
            try:
                outcome = scheduler._execute(item)
            finally:
                self.cond.acquire()
            self.running -= 1
            self.pools.give(resources)
            self.pools_given_back = self.pools_given_back or bool(resources)
            if not scheduler.interrupted.is_set():  # else: skipped, "interrupted"
                self._finish(item.action, outcome)
            # No wake-up here: this worker takes the next action itself and wakes
            # another one only if it finds more than it can run (or at the end).

    def wait_for_work(self) -> None:
        """Sleep until another worker finishes an action or the run stops."""
        self.idle += 1
        self.cond.wait()

    def wake_all(self) -> None:
        if self.idle:
            self.idle = 0
            self.cond.notify_all()

    def _wake_one(self) -> None:
        self.idle -= 1
        self.cond.notify()

    # --- choosing the next action ------------------------------------------------------

    def _stopping(self) -> bool:
        return (self.failed and not self.options.keep_going) or self.scheduler.interrupted.is_set()

    def _next(self) -> _Keyed | None:
        """The next action to run; cache hits and skips found on the way are finished."""
        if self.scheduler.interrupted.is_set():
            return None
        if self._stopping():
            self._skip_all()
            return None
        if self.parked and self.pools_given_back:
            for item in self.parked:
                if self.pools.fits(item.action.spec.resources):
                    self.parked.remove(item)
                    return item
            self.pools_given_back = False
        scheduler = self.scheduler
        while self.ready:
            if self.keying_from_stats:
                return None  # one worker at a time keys from stats (`_key_unlocked`)
            action = self.ready.pop()
            if self._stopping():
                self.ready.append(action)
                self._skip_all()
                return None
            blocked = scheduler._blocked_by(action, self.outcomes, self.producers)
            if blocked is not None and self.options.placeholder is None:
                self._finish(action, Outcome(action, "skipped", error=f"{blocked} failed"))
                continue
            prepared = self._key_unlocked(action)
            if isinstance(prepared, Outcome):
                self._finish(action, prepared)
                continue
            item = _Keyed(action, *prepared)
            if self._stopping():  # a failure while it was keyed
                if not scheduler.interrupted.is_set():
                    self._finish(action, Outcome(action, "skipped", item.key))
                return None
            if self.pools.fits(action.spec.resources):
                return item
            self.parked.append(item)
        return None

    def _key_unlocked(self, action: Action) -> Outcome | tuple[str, dict[str, str], bool]:
        """Key `action` and look it up with the lock released.

        Keying hashes the inputs the stat cache does not know (5 MiB each in
        the `media` benchmark); meanwhile the other workers record what
        they finished and start their next action. The action counts as
        running, so no worker stops while it may yet ready others. What is
        read here is safe without the lock: the outputs it needs are in
        `produced` since before it was ready, the stat cache and the action
        cache lock themselves, and a placeholder's path is added to
        `provisional_paths` with one (atomic) set operation.

        Keying from known stats and answering from the cache is Python under
        the GIL with a few short system calls: two workers doing it at once
        hand the GIL back and forth at every call, and 10,000 cache hits
        took 10-40% longer on two workers than on one (docs/performance.md).
        So while a worker keys from stats (`keying_from_stats`), the others
        key nothing (`_next`) and stay idle. Once keying must hash a file
        (which releases the GIL) or make a placeholder, and may take long, it
        no longer counts, and an idle worker is woken to key the next ready
        action (`slow`). A worker that finds a miss wakes another as it
        starts the action (`_loop`).
        """
        self.running += 1
        self.keying_from_stats += 1
        from_stats = True

        def slow() -> None:  # called by `_prepare`, without the lock
            nonlocal from_stats
            with self.cond:
                if from_stats:
                    from_stats = False
                    self.keying_from_stats -= 1
                if self.idle and self.ready:
                    self._wake_one()

        self.cond.release()
        try:
            # In the worker's turn, as running an action is (WorkerTurns): `slow` takes
            # the lock after the turn, which nothing waits for while holding the lock.
            with self.turns, self.scheduler.profiler.span(f"cache lookup {action.owner}",
                                                          "cache"):
                return self.scheduler._prepare(action, self.produced, self.provisional_paths,
                                               self.producers, slow)
        finally:
            self.cond.acquire()
            self.running -= 1
            if from_stats:
                self.keying_from_stats -= 1

    def _skip_all(self) -> None:
        """After a failure without --keep-going: nothing else starts."""
        for item in self.parked:
            self._finish(item.action, Outcome(item.action, "skipped", item.key))
        self.parked.clear()
        while self.ready:
            action = self.ready.pop()
            self._finish(action, Outcome(action, "skipped"))

    def _finish(self, action: Action, outcome: Outcome) -> None:
        self.outcomes[action.index] = outcome
        self.scheduler.on_outcome(outcome)
        if outcome.ok:
            self.produced.update(outcome.outputs)
            if outcome.provisional:
                self.provisional_paths.update(outcome.outputs)
        elif outcome.status == "failed":
            self.failed = True
            if not self.options.keep_going:  # the build stops: running actions try no more
                self.scheduler.executor.no_more_attempts = True
        for dependent in self.dependents[action.index]:
            pending = self.waiting_on[dependent.index]
            pending.discard(action.index)
            if not pending:
                self.ready.append(dependent)

    def outcomes_of_all(self) -> dict[int, Outcome]:
        """Every action's outcome; the ones that never ran say why."""
        interrupted = self.scheduler.interrupted.is_set()
        for action in self.actions:
            if action.index not in self.outcomes:
                waiting = sorted(str(a.owner) for a in self.actions
                                 if a.index in self.waiting_on[action.index])
                reason = ("interrupted" if interrupted else
                          f"never ready: waits on {', '.join(waiting)}" if waiting else "")
                self.outcomes[action.index] = Outcome(action, "skipped", error=reason)
        return self.outcomes


def describe_os_error(exc: OSError) -> str:
    """One line for a file system error around an action (mb's own writes: the cache,
    mb-out/, the sandbox), naming the file and what to do.

    A temporary file (`.tmp-<pid>-<thread>-NAME`, made beside NAME before the
    rename into place) is named as the NAME it stands for: that is the path the
    user can do something about.
    """
    from mb.fsutil import TEMPORARY_PREFIX

    path = str(exc.filename) if exc.filename else ""
    folder, name = os.path.split(path)
    if name.startswith(TEMPORARY_PREFIX):
        name = name[len(TEMPORARY_PREFIX):].split("-", 2)[-1]
        path = os.path.join(folder, name)
    where = f": {path}" if path else ""
    if exc.errno in (errno.EISDIR, errno.ENOTDIR, errno.ENOTEMPTY, errno.EEXIST):
        advice = "something else is in the way there; remove it (or run `mb clean`)"
    elif exc.errno in (errno.ENOSPC, errno.EDQUOT):
        advice = "free space"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        advice = "fix the permissions"
    else:
        advice = "free space or fix the permissions"
    return (f"{exc.strerror or exc}{where} (mb could not write its files for this action); "
            f"{advice}, then build again")
