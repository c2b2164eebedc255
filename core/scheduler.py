"""Runs a set of actions in dependency order: -j, resource pools, keep-going, interrupts.

An action becomes ready when every action producing one of its inputs has
finished. Cache lookups happen on the scheduling thread (they are a stat
and a small read); only cache misses go to the worker threads, which spend
their time waiting for a sandboxed process. `jobs` is itself a pool, so an
action holds one job slot plus whatever `resources` it declared.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Final

import attrs

from mb.actions import Action, action_key
from mb.errors import ConfigError
from mb.executor import Executor, MissingInputs, Outcome
from mb.profile import NullProfiler, Profiler


#: How often Python hands the GIL to another thread while actions run (see `Scheduler.run`).
SWITCH_INTERVAL_S: Final = 0.0005


@attrs.frozen
class SchedulerOptions:
    jobs: int
    keep_going: bool = False
    pools: Mapping[str, int] = attrs.field(factory=dict)
    #: Called for each missing input when placeholders are on: path -> digest, or None.
    placeholder: Callable[[str, Action], str | None] | None = None
    #: Paths changed since the last build (mb watch): actions reading them go first.
    first: frozenset[str] = frozenset()


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
    def __init__(self, executor: Executor, options: SchedulerOptions,
                 on_outcome: Callable[[Outcome], None], profiler: Profiler | None = None) -> None:
        self.executor = executor
        self.profiler = profiler or NullProfiler()
        self.options = options
        self.on_outcome = on_outcome
        self.interrupted = threading.Event()
        self._done: queue.Queue[tuple[Action, Outcome]] = queue.Queue()

    def interrupt(self) -> None:
        self.interrupted.set()
        self._done.put_nowait(None)  # type: ignore[arg-type]  # wake the loop

    def run(self, actions: Sequence[Action], producers: Mapping[str, Action],
            known: Mapping[str, str] | None = None) -> dict[int, Outcome]:
        """Run `actions`; returns an outcome for every one (skipped where it never ran).

        `known` gives the digests of outputs of actions not in `actions` that
        are up to date already (an incremental build runs only part of the graph).

        While it runs, Python switches threads every `SWITCH_INTERVAL_S`
        instead of every 5 ms. The workers spend their time blocked on a
        process; when one ends, its worker needs the GIL back, and the
        scheduling thread, computing keys for the actions ahead, could keep
        it for a whole interval: with 5 ms, a worker often waited longer for
        the GIL than its action had run (measured: clean `wide1k` and
        `media` builds about 14% faster, docs/performance.md).
        """
        previous = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        try:
            return self._run(actions, producers, known)
        finally:
            sys.setswitchinterval(previous)

    def _run(self, actions: Sequence[Action], producers: Mapping[str, Action],
             known: Mapping[str, str] | None) -> dict[int, Outcome]:
        pools = Pools(self.options.pools)
        check_pools(actions, pools)
        wanted = {a.index for a in actions}
        waiting_on: dict[int, set[int]] = {}
        dependents: dict[int, list[Action]] = {a.index: [] for a in actions}
        for action in actions:
            needs = {producers[p].index for p in action.spec.inputs
                     if p in producers and producers[p].index in wanted}
            needs.discard(action.index)
            waiting_on[action.index] = needs
            for index in needs:
                dependents[index].append(action)
        ready = [a for a in reversed(actions) if not waiting_on[a.index]]
        if self.options.first:  # a stack: the actions reading a changed path on top
            ready.sort(key=lambda a: any(p in self.options.first for p in a.spec.inputs))
        produced: dict[str, str] = dict(known or {})
        provisional_paths: set[str] = set()
        outcomes: dict[int, Outcome] = {}
        running = 0
        failed = False
        job_slot = ("__jobs__", 1)
        pools.sizes["__jobs__"] = max(1, self.options.jobs)

        def finish(action: Action, outcome: Outcome) -> None:
            nonlocal failed
            outcomes[action.index] = outcome
            self.on_outcome(outcome)
            if outcome.ok:
                produced.update(outcome.outputs)
                if outcome.provisional:
                    provisional_paths.update(outcome.outputs)
            else:
                failed = failed or outcome.status == "failed"
            for dependent in dependents[action.index]:
                pending = waiting_on[dependent.index]
                pending.discard(action.index)
                if not pending:
                    ready.append(dependent)

        # Actions whose key is known and missed the cache, waiting for pool units.
        # Keyed actions that missed the cache, in order; `parked` wait for a named
        # pool (gpu, api) and come back when one of its units is given back.
        runnable: deque[tuple[Action, str, dict[str, str], bool]] = deque()
        parked: list[tuple[Action, str, dict[str, str], bool]] = []
        with ThreadPoolExecutor(max_workers=max(1, self.options.jobs),
                                thread_name_prefix="mb-action") as workers:
            while ready or runnable or parked or running:
                if self.interrupted.is_set():
                    break
                while ready:
                    action = ready.pop()
                    if (failed and not self.options.keep_going) or self.interrupted.is_set():
                        finish(action, Outcome(action, "skipped"))
                        continue
                    blocked = self._blocked_by(action, outcomes, producers)
                    if blocked is not None and self.options.placeholder is None:
                        finish(action, Outcome(action, "skipped", error=f"{blocked} failed"))
                        continue
                    with self.profiler.span(f"cache lookup {action.owner}", "cache"):
                        prepared = self._prepare(action, produced, provisional_paths, producers,
                                                 outcomes)
                    if isinstance(prepared, Outcome):
                        finish(action, prepared)
                    else:
                        runnable.append((action, *prepared))
                        if pools.fits((job_slot, *action.spec.resources)):
                            break  # start it now; look the rest up while it runs
                    while running:  # what finished readies its dependents, on top of the stack
                        try:
                            finished_item = self._done.get_nowait()
                        except queue.Empty:
                            break
                        if finished_item is None:
                            continue
                        done_action, outcome = finished_item
                        running -= 1
                        pools.give((job_slot, *done_action.spec.resources))
                        finish(done_action, outcome)
                if (failed and not self.options.keep_going) or self.interrupted.is_set():
                    for action, key, _inputs, _provisional in (*runnable, *parked):
                        finish(action, Outcome(action, "skipped", key))
                    runnable.clear()
                    parked.clear()
                # Every action needs a job slot: stop looking as soon as none is free.
                while runnable and pools.fits((job_slot,)):
                    item = runnable.popleft()
                    wants = (job_slot, *item[0].spec.resources)
                    if pools.fits(wants):
                        pools.take(wants)
                        running += 1
                        workers.submit(self._work, *item)
                    else:
                        parked.append(item)
                if ready:
                    continue  # finishing skipped actions may have readied others
                if not running:
                    break  # nothing can make progress (cannot happen after check_pools)
                done = self._done.get()
                if done is None:
                    continue
                action, outcome = done
                running -= 1
                pools.give((job_slot, *action.spec.resources))
                if action.spec.resources and parked:
                    runnable.extendleft(reversed(parked))
                    parked.clear()
                finish(action, outcome)
            if self.interrupted.is_set():
                self.executor.sandbox.registry.kill_all()
        for action in actions:
            if action.index not in outcomes:
                waiting = sorted(str(a.owner) for a in actions
                                 if a.index in waiting_on[action.index])
                reason = ("interrupted" if self.interrupted.is_set() else
                          f"never ready: waits on {', '.join(waiting)}" if waiting else "")
                outcomes[action.index] = Outcome(action, "skipped", error=reason)
        return outcomes

    def _blocked_by(self, action: Action, outcomes: Mapping[int, Outcome],
                    producers: Mapping[str, Action]) -> str | None:
        for path in action.spec.inputs:
            producer = producers.get(path)
            if producer is not None:
                outcome = outcomes.get(producer.index)
                if outcome is not None and not outcome.ok:
                    return str(producer.owner)
        return None

    def _prepare(self, action: Action, produced: dict[str, str], provisional_paths: set[str],
                 producers: Mapping[str, Action], outcomes: Mapping[int, Outcome]
                 ) -> Outcome | tuple[str, dict[str, str], bool]:
        """Compute the key; answer from the cache if possible, else return what to run."""
        executor = self.executor
        provisional = any(p in provisional_paths for p in action.spec.inputs)
        try:
            inputs = executor.input_digests(action, produced)
        except MissingInputs as missing:
            if self.options.placeholder is None:
                kinds = ["output of " + str(producers[p].owner) if p in producers
                         else "source file" for p in missing.paths]
                return Outcome(action, "failed", error="; ".join(
                    f"missing {kind} {path} (needed by {action.owner})"
                    for kind, path in zip(kinds, missing.paths)))
            filled = dict(produced)
            for path in missing.paths:
                digest = self.options.placeholder(path, action)
                if digest is None:
                    return Outcome(action, "failed", error=f"missing input {path}")
                filled[path] = digest
                provisional_paths.add(path)
            provisional = True
            inputs = executor.input_digests(action, filled)
        tools = executor.tool_digests(action)
        key = action_key(action, inputs, tools)
        cached = executor.lookup(action, key)
        if cached is not None:
            executor.materialize(cached.outputs)
            # A cached action cost nothing this time: costs count what a build spent.
            return Outcome(action, "cached", key, outputs=cached.outputs,
                           metadata=cached.metadata, cost=None, provisional=provisional,
                           input_digests=inputs, tool_digests=tools)
        return key, inputs, provisional

    def _work(self, action: Action, key: str, inputs: dict[str, str], provisional: bool) -> None:
        try:
            with self.profiler.span(f"{action.owner} {action.description}", "action",
                                    key=key):
                outcome = self.executor.execute(action, key, inputs, provisional)
            outcome = attrs.evolve(outcome, tool_digests=self.executor.tool_digests(action))
        except Exception as exc:  # a bug or an I/O error: fail this action, keep the build sane
            import traceback

            outcome = Outcome(action, "failed", key, error=f"internal error: {exc!r}",
                              stderr_tail=traceback.format_exc()[-2000:])
        self._done.put((action, outcome))

