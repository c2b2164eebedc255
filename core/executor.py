"""Runs one action: compute its key, answer from the cache or run it in a sandbox, store it.

The scheduler decides *when* an action runs; this module decides *how*:
the key from input digests, a cache lookup, staging into a sandbox,
retries, collecting declared outputs into the content-addressed store and
placing them read-only under `mb-out/`.

Not every action goes through the cache. One tagged `no-cache`, every action
of a `--no-cache` build (`ExecutorOptions`), and every action run by a
sandbox whose results depend on more than the key covers (its
`caches_results` is False: the `none` sandbox) is never looked up and
leaves nothing in the cache directory, which may be shared: its outputs are
moved from the sandbox straight into `mb-out/` (read-only, by one atomic
rename), and its dependents stage them from there.

An output keeps its exec bit: executable outputs are stored as their own
blobs (`cas/<digest>.x`, 0555; see mb.cache) and placed and staged from
those. The executor remembers, for every output it stored, found or placed
in this build, its digest, whether it is executable and whether it is in
mb-out/ only (`_Generated`), so keying a dependent and staging its inputs
need no extra system call. An action key sees each input and tool as its
digest marked `x:` when executable (`mb.digest.key_digest`).

Secrets: the values of the variables an action declared in `secret_env` are
replaced by `***` in what its failure reports (the error, the stderr tail and
the events the action sent) before they reach events, logs or the terminal.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from mb.actions import Action
from mb.cache import ActionResult, Cache
from mb.context import Tool
from mb.digest import (
    EXECUTABLE_BITS, EXECUTABLE_MARK, digest_and_stat, digest_file, split_key_digest,
)
from mb.environment import (
    ENVIRONMENT_SETTINGS, environment_url_secrets, providers_without_environment,
)
from mb.events import EventLog
from mb.fsutil import discard, move_into_place, place_file, remove_temporaries_below
from mb.locks import CacheUse
from mb.masking import masked_forms, redact, redact_value
from mb.statcache import StatCache

if TYPE_CHECKING:  # imported where used: a no-op build never loads the sandboxes
    from mb.sandbox.base import Sandbox, WorkerTurns

EXIT_PERMANENT = 3  # mb.sandbox.worker: a failure that a retry cannot fix
#: The levels of the event log (SPEC §9); a plugin's event with another is logged as info.
EVENT_LEVELS = frozenset({"debug", "info", "warning", "error"})

#: An output this build stored, found in the cache or placed: (its digest, whether it is
#: executable, and for one placed in mb-out/ only (not cached) its (size, mtime_ns)).
_Generated = tuple[str, bool, "tuple[int, int] | None"]


@attrs.frozen
class Outcome:
    """How an action ended. `status`: cached, executed, failed or skipped."""

    action: Action
    status: str
    key: str = ""
    outputs: Mapping[str, str] = attrs.field(factory=dict)
    duration_s: float = 0.0
    error: str = ""
    stderr_tail: str = ""
    metadata: Mapping[str, Any] = attrs.field(factory=dict)
    cost: float | None = None
    provisional: bool = False
    input_digests: Mapping[str, str] = attrs.field(factory=dict)
    tool_digests: Mapping[str, str] = attrs.field(factory=dict)
    #: False when another attempt cannot help (a 4xx, an input written to).
    retryable: bool = True

    @property
    def ok(self) -> bool:
        return self.status in ("cached", "executed")


class MissingInputs(Exception):
    def __init__(self, paths: list[str]) -> None:
        super().__init__(", ".join(paths))
        self.paths = paths


@attrs.frozen
class ExecutorOptions:
    """`--no-cache` turns both off: no lookups, and nothing written to the cache dir."""

    read_cache: bool = True
    write_cache: bool = True


class Executor:
    def __init__(self, root: str, cache: Cache, statcache: StatCache, sandbox: Sandbox,
                 events: EventLog, providers: Mapping[str, Any], options: ExecutorOptions,
                 state_dir: str) -> None:
        self.root = root
        self.cache = cache
        self.statcache = statcache
        self.sandbox = sandbox
        self.events = events
        self.providers = providers
        # A sandbox that lets undeclared files and the host's environment in
        # (`none`) makes results the key does not describe: never cached, exactly
        # like `--no-cache` (no lookups, nothing written to the cache directory).
        if not sandbox.caches_results:
            options = attrs.evolve(options, read_cache=False, write_cache=False)
        self.options = options
        #: key -> result of provisional actions, kept for one `mb watch` session only
        #: (never in the cache), so an unchanged provisional action does not run again.
        self.provisional_results: dict[str, ActionResult] | None = None
        self.state_dir = state_dir
        self.output_dir = os.path.join(root, "mb-out")
        # Workspace-relative paths (normalised by analysis) are joined to these
        # prefixes by concatenation, as in sandbox.base.prepare_root: os.path's
        # functions took about a tenth of a worker's CPU in a profile.
        self._root_prefix = root + os.sep
        self._output_prefix = self.output_dir + os.sep
        self._tool_digests: dict[str, str] = {}
        #: Set when the build stops after a failure (no -k): a running action is not retried.
        self.no_more_attempts = False
        self._roots: set[str] = set()
        #: Workspace-relative output path -> what this build knows of it (`_Generated`).
        self._generated: dict[str, _Generated] = {}
        #: Digest -> file, for placeholders kept out of the cache (`store_placeholder`).
        self._placeholder_files: dict[str, str] = {}
        from mb.sandbox.base import (
            adopt_orphans, forget_programs, orphans, sandbox_folder,
        )

        #: Whose turn it is to do an action's Python work: the registry's, whose
        #: `run_process` steps aside while a process runs.
        self.turns: WorkerTurns = sandbox.registry.turns
        forget_programs()  # a program installed since the last build is found
        adopt_orphans()  # what an action detaches is found when it ends (run_process)
        #: Children of the main thread from before the build: not the actions' to stop.
        self._children_before = frozenset(orphans())
        # A build that died while placing outputs left a temporary link made to replace
        # one (`place_file`), which would stay in mb-out/ for good.
        self._sandbox_base = sandbox_folder(
            os.path.join(state_dir, "sandbox"),
            after_death=lambda: remove_temporaries_below(self.output_dir))
        #: Held shared until `close` (mb.locks.CacheUse): `mb gc` waits for this build.
        #: Taken last: whoever made this Executor must `close` it.
        self._cache_use: CacheUse | None = None
        if options.read_cache or options.write_cache:
            self._cache_use = CacheUse(cache.directory, exclusive=False, on_wait=lambda: (
                events.emit("cache.waiting", level="warning", message=(
                    f"mb gc is trimming the cache in {cache.directory}; waiting for it to "
                    "finish"))))
            self._cache_use.acquire()

    def close(self) -> None:
        """Empty the sandbox directories, but keep them; write the pending action results.

        Emptied first: a failed action's partial output may be what filled the
        disk the results are written to.

        They are named after the worker slot, not the process (one build runs
        per workspace at a time); keeping them keeps their stashed symlinks
        for the next build (see sandbox.base.prepare_root). Nothing an action
        staged or wrote stays in them. `mb clean --all` removes them. The
        folder is released last: a build that dies before this leaves its
        mark, and the next build retires the folder with any orphaned process
        still writing into it (docs/decisions/0007).
        """
        from mb.sandbox.base import (kill_processes_in, prepare_root, release_sandbox_folder,
                                     stop_orphans)

        try:
            # What an action started and detached from its process group (`setsid`)
            # outlives the group's kill; nothing an action started outlives the build:
            # neither what is still in a sandbox directory nor what mb adopted
            # (a detached child that moved out of its directory).
            kill_processes_in([self._sandbox_base])
            stop_orphans(keep=self._children_before)
            for root in self._roots:
                prepare_root(root, {}, ())
            for path in self._placeholder_files.values():
                discard(path)
        finally:
            try:
                self.cache.flush()
            finally:
                if self._cache_use is not None:
                    self._cache_use.release()
                    self._cache_use = None
                release_sandbox_folder(self._sandbox_base)

    # --- keys ------------------------------------------------------------------------

    def input_digests(self, action: Action, produced: Mapping[str, str],
                      before_hashing: Callable[[], None] | None = None) -> dict[str, str]:
        """Key digests of every input (the digest, marked `x:` when the file is
        executable); raises MissingInputs for absent source files.

        `before_hashing` is called (once per file) before a source whose stat
        the stat cache does not know is read and hashed.
        """
        digests: dict[str, str] = {}
        missing: list[str] = []
        for path in action.spec.inputs:
            known = produced.get(path)
            if known is not None:
                digests[path] = self._generated_key(path, known)
                continue
            try:
                digests[path] = self.statcache.key_digest(
                    self._root_prefix + path, before_hashing=before_hashing,
                    step_aside=self.turns.stepped_aside)
            except OSError:  # absent, a folder, a FIFO, a symlink loop: named by the scheduler
                missing.append(path)
        if missing:
            raise MissingInputs(missing)
        return digests

    def _generated_key(self, path: str, digest: str) -> str:
        """The key digest of a generated input whose content digest is `digest`.

        An output of this build is known (`_generated`). One that is not is
        an output an incremental build did not re-run, which the no-op check
        found in mb-out/ as the last build placed it, so its mode there is
        its mode (one stat, only in that case), or a placeholder.
        """
        known = self._generated.get(path)
        if known is not None and known[0] == digest:
            executable = known[1]
        else:
            try:
                executable = bool(os.stat(self._output_prefix + path).st_mode & EXECUTABLE_BITS)
            except OSError:
                executable = False
        return EXECUTABLE_MARK + digest if executable else digest

    def tool_digests(self, action: Action,
                     before_hashing: Callable[[], None] | None = None) -> dict[str, str]:
        """Key digests of the action's tools, marked `x:` when executable (as inputs)."""
        found: dict[str, str] = {}
        for tool in action.spec.tools:
            if tool.path not in self._tool_digests:
                self._tool_digests[tool.path] = self.statcache.key_digest(
                    tool.path, before_hashing=before_hashing,
                    step_aside=self.turns.stepped_aside)
            found[tool.name] = self._tool_digests[tool.path]
        return found

    # --- cache -----------------------------------------------------------------------

    def caches(self, action: Action) -> bool:
        """Whether `action`'s result may come from the cache (else it always runs)."""
        return action.cacheable and self.options.read_cache

    def stores(self, action: Action) -> bool:
        """Whether `action`'s outputs and result go into the cache (else its outputs are
        moved into mb-out/ directly and the cache directory never sees them)."""
        return action.cacheable and self.options.write_cache

    def lookup(self, action: Action, key: str) -> ActionResult | None:
        """The cached result of `key` (None for an action that is not cached, or a miss).

        A hit's outputs are remembered (`_generated`) for `materialize`, which
        the scheduler calls next, and for keying and staging the dependents.
        """
        if not self.caches(action):
            return None
        found = self.cache.get_result(key)
        if found is None and self.provisional_results is not None:
            found = self.provisional_results.get(key)
            if found is not None and not all(
                    os.path.exists(self.cache.blob_path(d, p in found.executable))
                    for p, d in found.outputs.items()):
                found = None
        if found is not None:
            executable = found.executable
            generated = self._generated
            for path, digest in found.outputs.items():
                generated[path] = (digest, path in executable, None)
        return found

    def materialize(self, outputs: Mapping[str, str]) -> None:
        """Place outputs under mb-out/ unless the right file is already there.

        Each is a hard link to its blob, the `.x` one for an output known to
        be executable. An output placed in mb-out/ only (not cached) is there.
        """
        generated = self._generated
        for path, digest in outputs.items():
            known = generated.get(path)
            executable = False
            if known is not None and known[0] == digest:
                if known[2] is not None:
                    continue
                executable = known[1]
            blob = self.cache.blob_path(digest, executable)
            target = self._output_prefix + path
            try:
                os.link(blob, target)  # nothing there yet (a clean build): placed
                continue
            except FileExistsError:
                try:
                    if _same_file(os.stat(target), os.stat(blob)):
                        continue
                except OSError:
                    pass
            except OSError:
                pass  # no folder yet, another file system: place_file sees to it
            place_file(blob, target)

    def store_placeholder(self, data: bytes) -> str:
        """Keep a placeholder's bytes where the actions reading it are staged from; returns
        their digest.

        A blob in the cache, like any output; but a build that may not write
        the cache (`--no-cache`, the `none` sandbox) keeps it in
        `.mb/tmp/placeholders/` until it closes.
        """
        from mb.digest import digest_bytes
        from mb.fsutil import atomic_write_bytes

        digest = digest_bytes(data)
        if self.options.write_cache:
            if not self.cache.has_blob(digest):
                atomic_write_bytes(self.cache.blob_path(digest), data, mode=0o444)
            return digest
        path = os.path.join(self.state_dir, "tmp", "placeholders", digest)
        if digest not in self._placeholder_files:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            atomic_write_bytes(path, data, mode=0o444)
            self._placeholder_files[digest] = path
        return digest

    # --- execution -------------------------------------------------------------------

    def execute(self, action: Action, key: str, inputs: Mapping[str, str],
                provisional: bool) -> Outcome:
        """Run the action in a sandbox (with retries) and store its outputs.

        The outcome carries the tool digests and the time of all attempts.
        """
        # One worker at a time, but for the process and large hashes (WorkerTurns).
        with self.turns:
            label = str(action.owner)
            attempts = 1 + max(0, action.spec.retries)
            start = time.monotonic()
            last: Outcome | None = None
            secrets = secret_values(self._secret_names(action), self._secret_texts(action))
            for attempt in range(1, attempts + 1):
                self.events.emit("action.started", target=label, description=action.description,
                                 attempt=attempt, key=key)
                last = self._attempt(action, key, inputs, provisional, secrets)
                if secrets and not last.ok:
                    # The message and stderr come from plugin code, which may echo a
                    # secret (a server echoing the Authorization header back).
                    last = attrs.evolve(last, error=redact(last.error, secrets),
                                        stderr_tail=redact(last.stderr_tail, secrets))
                # Not after Ctrl-C (the registry is stopping) or a failure elsewhere without
                # -k: the build is ending, and a new attempt would only be killed or wasted.
                if (last.ok or attempt == attempts or not last.retryable or self.no_more_attempts
                        or self.sandbox.registry.stopping):
                    break
                self.events.emit("action.retry", target=label, level="warning", attempt=attempt,
                                 error=last.error)
            assert last is not None
            return attrs.evolve(last, duration_s=time.monotonic() - start,
                                tool_digests=self.tool_digests(action))

    def _secret_names(self, action: Action) -> tuple[str, ...]:
        """The variables whose values this action's messages must not show: its own
        `secret_env`, and under the `none` sandbox, which hands every action the
        host's whole environment, every provider's `api_key_env` too."""
        names = tuple(action.spec.secret_env)
        if self.sandbox.name == "none":
            names += tuple(str(settings["api_key_env"]) for settings in self.providers.values()
                           if isinstance(settings, Mapping) and settings.get("api_key_env"))
        return names

    def _secret_texts(self, action: Action) -> list[str]:
        """Secrets that are not variables of their own: the credentials of a provider
        URL from the environment (`MB_COMFY_URL`), which Python actions receive."""
        if action.spec.kind != "call" and self.sandbox.name != "none":
            return []
        return environment_url_secrets(os.environ)

    def _attempt(self, action: Action, key: str, inputs: Mapping[str, str],
                 provisional: bool, secrets: list[str] | None = None) -> Outcome:
        from mb.sandbox.base import SandboxRequest
        from mb.sandbox.linux import worker_paths

        # One sandbox directory per worker slot, reused (see sandbox.base.prepare_root).
        root = self._sandbox_base + os.sep + threading.current_thread().name
        spec = action.spec
        staged = {path: self._source_of(path, digest) for path, digest in inputs.items()}
        channel = root + os.sep + ".mb-channel.jsonl"
        env = dict(spec.env)
        # What the `linux` sandbox shows besides the inputs (docs/decisions/0009).
        readable = tuple(dict.fromkeys(
            [t.path for t in spec.tools] + [p.path for p in spec.argv if isinstance(p, Tool)]))
        writable: tuple[str, ...] = ()
        spec_file = None
        if spec.kind == "call":
            argv = self._worker_argv(action, root, channel)
            spec_file = argv[-1]
            readable += (*worker_paths(self.root), spec_file)  # the interpreter, mb, the spec
            writable = (os.path.join(self.state_dir, "providers"),)
            for name in (*spec.secret_env, *ENVIRONMENT_SETTINGS):
                if name in os.environ:
                    env[name] = os.environ[name]
        else:
            argv = tuple(p.path if isinstance(p, Tool) else p for p in spec.argv)
        request = SandboxRequest(root=root, workspace=self.root, secret=bool(secrets),
                                 cache_dir=self.cache.directory,
                                 inputs=staged, outputs=spec.outputs, argv=argv,
                                 env=env, timeout=spec.timeout,
                                 network=spec.network, stdin=spec.stdin, stdout=spec.stdout,
                                 readable=readable, writable=writable)
        blob_stats = self._blob_stats(staged)
        self._roots.add(root)
        try:
            result = self.sandbox.run(request)
        finally:
            if spec_file is not None:
                discard(spec_file)  # it may hold provider settings; nothing reads it again
        # Masked before anything is cut from it (the message, the tail): a cut
        # could leave part of a secret that no longer matches.
        if secrets:
            result = attrs.evolve(result, stderr_tail=redact(result.stderr_tail, secrets))
        # Only Python actions (mb.sandbox.worker) report through the channel; a
        # command writing a file of that name in its sandbox is not listened to.
        metadata, cost = (self._read_channel(channel, str(action.owner), secrets or [])
                          if spec.kind == "call" else ({}, None))
        if result.timed_out:
            return Outcome(action, "failed", key, error=f"timed out after {spec.timeout:g} s",
                           stderr_tail=result.stderr_tail)
        if result.exit_code != 0:
            return Outcome(action, "failed", key,
                           error=_exit_message(spec.kind, result.exit_code, result.stderr_tail),
                           stderr_tail=result.stderr_tail,
                           retryable=not (spec.kind == "call"
                                          and result.exit_code == EXIT_PERMANENT))
        modified = self._modified_sources(staged, blob_stats, root, inputs)
        if modified:
            return Outcome(action, "failed", key, error=(
                f"input {', '.join(modified)} changed while the action ran (the action "
                "wrote to it, or it was edited meanwhile); the result is not kept. "
                "Declared inputs are read-only: write a new output instead"),
                stderr_tail=result.stderr_tail, retryable=False)
        if result.missing_outputs:
            names = ", ".join(result.missing_outputs)
            return Outcome(action, "failed", key,
                           error=f"declared output {names} was not created",
                           stderr_tail=result.stderr_tail)
        stores = self.stores(action)
        outputs, executable = self._collect(root, spec.outputs, stores)
        if stores:
            stored = ActionResult(outputs=outputs, metadata=metadata, cost=cost,
                                  duration_s=result.duration_s, executable=executable)
            if not provisional:
                self.cache.put_result(key, stored)
            elif self.provisional_results is not None:
                self.provisional_results[key] = stored
            self.materialize(outputs)
        return Outcome(action, "executed", key, outputs=outputs, metadata=metadata, cost=cost,
                       provisional=provisional, input_digests=inputs)

    def _source_of(self, path: str, digest: str) -> str:
        """Where to stage an input from, given its key digest: its blob if cached (same
        bytes and exec bit) and the build reads the cache, else the source.

        A placeholder kept out of the cache is staged from its file.

        An output placed in mb-out/ only (not cached) is staged from there.
        An output of an action this build did not run (an incremental build)
        whose blob `mb gc` removed is staged from `mb-out/`, where the build
        checked its stat is the one it placed.
        """
        digest, executable = split_key_digest(digest)
        known = self._generated.get(path)
        if known is not None and known[2] is not None and known[0] == digest:
            return self._output_prefix + path
        placeholder = self._placeholder_files.get(digest)
        if placeholder is not None:
            return placeholder
        if self.options.read_cache:
            blob = self.cache.blob_path(digest, executable)
            if os.path.exists(blob):
                return blob
        source = self._root_prefix + path
        placed = self._output_prefix + path
        if not os.path.exists(source) and os.path.exists(placed):
            return placed
        return source

    def _modified_sources(self, staged: Mapping[str, str],
                          blob_stats: Mapping[str, tuple[int, int]], root: str,
                          keyed: Mapping[str, str]) -> list[str]:
        """Inputs whose stat changed while the action ran.

        Sources are compared with the whole stat they were hashed at (staging
        links to them, which changes nothing of theirs), and with the bytes the
        action was keyed with (another action may have hashed an edit since).
        Blobs are hard-linked into the sandbox, and 0444 does not stop root: a blob
        written to no longer matches its name, so it is removed from the cache.
        An output placed in mb-out/ only is compared with its stat when it
        was hashed (and left there: the action that made it runs again next
        build anyway).
        """
        changed = []
        cache_prefix = self.cache.directory + os.sep
        for rel, source in staged.items():
            if source in blob_stats and source.startswith(cache_prefix):
                if _blob_written(source, root + os.sep + rel, blob_stats[source], keyed[rel]):
                    changed.append(rel)
                continue
            try:
                st = os.stat(source)
            except OSError:
                changed.append(rel)
                continue
            if source in blob_stats:  # an output in mb-out/ only
                if blob_stats[source] != (st.st_size, st.st_mtime_ns):
                    changed.append(rel)
                continue
            # The whole signature: a replacement that keeps size and mtime (`mv` of
            # a new file, `cp -p`, `rsync -a`, an edit then `touch -d`) moves the
            # inode or the ctime, and would otherwise be cached under the old key.
            before = self.statcache.hashed_signature(source)
            if before is not None and before != (st.st_size, st.st_mtime_ns, st.st_ino,
                                                 st.st_ctime_ns):
                changed.append(rel)
                continue
            # Another action hashed it again after an edit: the stat matches the new
            # entry, but this action was keyed with the old bytes.
            known = self.statcache.known_digest(source)
            if known is not None and (known.removeprefix(EXECUTABLE_MARK)
                                      != keyed[rel].removeprefix(EXECUTABLE_MARK)):
                changed.append(rel)
        return changed

    def _blob_stats(self, staged: Mapping[str, str]) -> dict[str, tuple[int, int]]:
        """(size, mtime_ns) of the staged inputs that are blobs, or outputs in mb-out/ only
        (from when they were hashed: no system call), for `_modified_sources`."""
        blobs = {}
        cache_prefix = self.cache.directory + os.sep
        for rel, source in staged.items():
            if source.startswith(cache_prefix):
                st = os.stat(source)
                blobs[source] = (st.st_size, st.st_mtime_ns)
            else:
                known = self._generated.get(rel)
                if known is not None and known[2] is not None:
                    blobs[source] = known[2]
        return blobs

    def _collect(self, root: str, outputs: tuple[str, ...],
                 stores: bool) -> tuple[dict[str, str], frozenset[str]]:
        """Hash the declared outputs and store them in the cache (`stores`), else move them
        into mb-out/; returns their digests and the paths of the executable ones.

        The exec bit comes from the stat taken while hashing: no extra call.
        """
        collected: dict[str, str] = {}
        executable: list[str] = []
        for path in outputs:
            produced = root + os.sep + path
            digest, st = digest_and_stat(produced, self.turns.stepped_aside)
            is_executable = bool(st.st_mode & EXECUTABLE_BITS)
            placed: tuple[int, int] | None = None
            if stores:
                self.cache.store_file(produced, digest, is_executable)
            else:
                target = self._output_prefix + path
                if not move_into_place(produced, target, 0o555 if is_executable else 0o444):
                    st = os.stat(target)  # a copy (a symlink's bytes, another file system)
                placed = (st.st_size, st.st_mtime_ns)
            self._generated[path] = (digest, is_executable, placed)
            collected[path] = digest
            if is_executable:
                executable.append(path)
        return collected, frozenset(executable)

    def _worker_argv(self, action: Action, root: str, channel: str) -> tuple[str, ...]:
        spec = action.spec
        assert spec.function is not None
        spec_path = os.path.join(self.state_dir, "tmp", f"call-{action.index}-{os.getpid()}.json")
        os.makedirs(os.path.dirname(spec_path), exist_ok=True)
        os.makedirs(root, exist_ok=True)
        data = {
            "module": spec.function.module, "qualname": spec.function.qualname,
            "inputs": list(spec.inputs), "outputs": list(spec.outputs),
            "tools": [t.path for t in spec.tools], "params": spec.params,
            # Without what the environment set (a URL may hold a password): the
            # worker applies its environment again (`ENVIRONMENT_SETTINGS`).
            "providers": providers_without_environment(self.providers, os.environ),
            "label": str(action.owner), "channel": channel,
            "state_dir": os.path.join(self.state_dir, "providers"),
            "sys_path": [p for p in sys.path if p],
            "fresh_modules": list(action.function_modules),
        }
        fd = os.open(spec_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with open(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
        return (sys.executable, "-m", "mb.sandbox.worker", spec_path)

    def _read_channel(self, channel: str, label: str,
                      secrets: list[str]) -> tuple[dict[str, Any], float | None]:
        """Events, metadata and cost a Python action reported while it ran; every string
        of its events and metadata, at any depth, has the action's secrets replaced
        (`redact_value`): events go to the log, metadata into the cache, which may
        be shared."""
        metadata: dict[str, Any] = {}
        cost: float | None = None
        try:
            with open(channel, encoding="utf-8") as f:
                lines = f.readlines()
        except FileNotFoundError:
            return metadata, cost
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("kind") == "event":
                data = redact_value(record.get("data", {}), secrets)
                data.pop("target", None)  # the action's own label, always
                level = record.get("level", "info")
                self.events.emit(redact(str(record["type"]), secrets), target=label,
                                 level=level if level in EVENT_LEVELS else "info", **data)
            elif record.get("kind") == "metadata":
                name = redact(str(record["key"]), secrets)
                metadata[name] = redact_value(record["value"], secrets)
            elif record.get("kind") == "cost":
                cost = (cost or 0.0) + float(record["amount"])
        return metadata, cost


def contents_keyed(outcomes: Iterable[Outcome]) -> dict[str, str] | None:
    """Path -> the content digest the actions' keys used for it; None when two actions
    used different bytes of one file (it was edited while the build ran).

    The snapshot must describe what the outputs were built from, not the last
    hash of each file: recorded from the statcache alone, an edit between two
    actions reading one file was taken for the state both were built from,
    and every later build was a no-op with one output stale.
    """
    seen: dict[str, str] = {}
    for outcome in outcomes:
        for path, key_digest in outcome.input_digests.items():
            content = key_digest.removeprefix(EXECUTABLE_MARK)
            if seen.setdefault(path, content) != content:
                return None
    return seen


def secret_values(names: Sequence[str], texts: Sequence[str] = ()) -> list[str]:
    """The texts to hide for the secrets named `names` (variables of this process) and
    for the secret `texts` themselves (`mb.masking.masked_forms`)."""
    return masked_forms([os.environ.get(name, "") for name in names] + list(texts))


def _blob_written(blob: str, staged: str, before: tuple[int, int], keyed: str) -> bool:
    """Whether the action wrote to the blob it was given as an input (a hard link at
    `staged`; 0444 does not stop root); a blob written to no longer matches its
    name, so it is removed from the cache.

    The staged link is what the action saw, whatever the cache holds now. A
    stat that moved is confirmed by the bytes: another process may have stored
    the same bytes again (a new inode and mtime) between the stat `before` and
    the staging, which is no write (discarding that good blob made every
    workspace sharing the cache run the action again, and again).
    """
    try:
        st = os.stat(staged)
    except OSError:  # the action removed its link: ask the cache's file
        try:
            st = os.stat(blob)
        except OSError:
            return False  # collected meanwhile; the action read the link it was given
        staged = blob
    if (st.st_size, st.st_mtime_ns) == before:
        return False
    try:
        if digest_file(staged) == split_key_digest(keyed)[0]:
            return False
    except OSError:
        pass
    try:
        if _same_file(os.stat(blob), st):
            discard(blob)
    except OSError:
        pass
    return True


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return a.st_ino == b.st_ino and a.st_dev == b.st_dev


def _exit_message(kind: str, code: int, stderr_tail: str = "") -> str:
    """`data.error` of a failed attempt: one line, shown in `retrying` and `FAILED` lines.

    For a Python action that is the action's own message (see
    `_python_failure`), so the reason a provider call failed is in the event
    and on the retry line, not only in the stderr tail under the last attempt.
    """
    if code < 0:
        return f"killed by signal {-code}"
    from mb.sandbox.namespace import SETUP_FAILED, SETUP_PREFIX

    if code == SETUP_FAILED and stderr_tail.startswith(SETUP_PREFIX):
        return stderr_tail.splitlines()[0]  # the `linux` sandbox's launcher: which step failed
    if kind == "call":
        message = _python_failure(stderr_tail) or "Python action failed"
        return message + (" (not retryable)" if code == EXIT_PERMANENT else "")
    return f"command exited with status {code}"


#: Longest `data.error` taken from a Python action's message; the whole text
#: stays in `stderr_tail`.
_MAX_ERROR_CHARS = 500


def _python_failure(stderr_tail: str) -> str:
    """The message of the exception that ended a Python action, read from its stderr.

    mb.sandbox.worker writes it last: `error: <message>` for an `mb.ActionError`,
    else a traceback ending in `module.Type: message` (also Python's own
    report when the worker fails before calling the action, e.g. an import
    error). The traceback's header may be cut off by the 20-line tail, so the
    exception line is found as the first unindented line after the last frame
    (`  File "..."`). What the action printed to stderr before it failed comes
    earlier, so the last marker wins. The result is `message` for an
    ActionError and `Type: message` (module dropped) for any other exception,
    cut to its first line; "" when no message is found (a native crash). Only
    the exception's own text is used, never the environment; a secret the
    action put in its own message (echoed by a server, say) is hidden by
    `Executor.execute` (`redact`) before the message goes anywhere.
    """
    lines = stderr_tail.splitlines()
    error_at = frame_at = -1
    for i in range(len(lines) - 1, -1, -1):
        line = lines[i]
        if error_at < 0 and line.startswith("error: "):
            error_at = i
        if line.startswith('  File "'):
            frame_at = i
            break
    if error_at > frame_at:
        message = lines[error_at][len("error: "):]
    elif frame_at >= 0:
        rest = [line for line in lines[frame_at + 1:] if not line.startswith(" ")]
        if not rest or not rest[0].strip():
            return ""
        name, sep, text = rest[0].partition(": ")
        if not name.replace(".", "").replace("_", "").isalnum():
            return rest[0].strip()[:_MAX_ERROR_CHARS]
        message = name.rpartition(".")[2] + sep + text
    else:
        return ""
    message = message.strip()
    if len(message) > _MAX_ERROR_CHARS:
        message = message[:_MAX_ERROR_CHARS - 3] + "..."
    return message


def report_outcome(events: EventLog, outcome: Outcome) -> None:
    """Log how an action ended: `action.finished` or `action.failed` (SPEC §9)."""
    label = str(outcome.action.owner)
    if outcome.status in ("cached", "executed"):
        events.emit("action.finished", target=label, cached=outcome.status == "cached",
                    duration_s=round(outcome.duration_s, 6),
                    outputs={f"mb-out/{p}": d for p, d in outcome.outputs.items()},
                    provisional=outcome.provisional, cost=outcome.cost,
                    description=outcome.action.description)
    elif outcome.status == "failed":
        events.emit("action.failed", target=label, level="error", error=outcome.error,
                    stderr_tail=outcome.stderr_tail, description=outcome.action.description)
