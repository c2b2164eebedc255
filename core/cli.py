"""`mb` command line: argv -> command -> exit code. The only place that prints errors.

Commands live in `cmd_*.py` modules and are imported only when used, so
`mb build` does not pay for what `mb graph` needs.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any, Final, NoReturn

from mb.errors import BuildFailed, ExitCode, UserError


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage mistake reported in one line like every other mistake
    (docs/errors.md) instead of the usage block; `--help` still shows it. The
    sub-command parsers are of this class too (argparse makes them like their parent)."""

    def error(self, message: str) -> NoReturn:
        self.exit(ExitCode.USAGE_ERROR, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def _version() -> str:
    """mb's version, as `mb plugins` shows it for the built-in rules."""
    from mb import __version__

    return __version__


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mb", description="build generative-media pipelines")
    parser.add_argument("--version", action="version", version=f"mb {_version()}")
    parser.add_argument("-C", dest="directory", default=None, help="start in DIR")
    parser.add_argument("-p", dest="plugins", action="append", default=[],
                        help="load a plugin module (repeatable)")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("-q", "--quiet", action="store_true")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add_plugin_flag(p: argparse.ArgumentParser) -> None:
        """`-p` after the command too (`mb build -p mymod`), as `-v` and `-q` are."""
        p.add_argument("-p", dest="plugins_sub", action="append", default=[],
                       help="load a plugin module (repeatable)")

    def add_build_flags(p: argparse.ArgumentParser) -> None:
        add_plugin_flag(p)
        p.add_argument("patterns", nargs="*", default=["//..."])
        p.add_argument("-j", "--jobs", type=int, default=None,
                       help="actions run at once (default: MB.toml [build] jobs, else the "
                            "CPUs mb may use)")
        p.add_argument("-k", "--keep-going", action=argparse.BooleanOptionalAction,
                       default=None,
                       help="after a failure, still run every action that does not need it "
                            "(--no-keep-going overrides MB.toml [build] keep_going)")
        p.add_argument("--sandbox", choices=("dir", "linux", "none"), default=None)
        p.add_argument("--no-cache", action="store_true")
        p.add_argument("--remote-cache", default=None)
        p.add_argument("--executor", default="local")
        p.add_argument("--profile", default=None)
        p.add_argument("-v", "--verbose", action="store_true", dest="verbose_sub")
        p.add_argument("-q", "--quiet", action="store_true", dest="quiet_sub")
        p.add_argument("--color", choices=("auto", "always", "never"), dest="color_sub")

    build = sub.add_parser("build", help="build targets (default //...)")
    add_build_flags(build)
    build.add_argument("--placeholders", action="store_true")
    watch = sub.add_parser("watch", help="build, then rebuild on every change")
    add_build_flags(watch)

    query = sub.add_parser("query", help="deps(L), rdeps(P, L), kind(RULE, P), or a pattern")
    add_plugin_flag(query)
    query.add_argument("expression")
    query.add_argument("--output", choices=("label", "json", "long"), default="label")
    graph = sub.add_parser("graph", help="the dependency graph")
    add_plugin_flag(graph)
    graph.add_argument("pattern", nargs="?", default="//...")
    graph.add_argument("--format", choices=("dot", "mermaid", "json"), default="dot")
    rules = sub.add_parser("rules", help="installed rules")
    add_plugin_flag(rules)
    rules.add_argument("rule", nargs="?")
    add_plugin_flag(sub.add_parser("plugins", help="installed plugins"))
    clean = sub.add_parser("clean", help="remove mb-out/ (--all: also .mb/)")
    clean.add_argument("--all", action="store_true")
    gc = sub.add_parser("gc", help="trim the cache to [cache] max_size")
    gc.add_argument("--max-size", default=None)
    _add_history_parsers(sub)
    return parser


#: Event levels, least severe first: `mb tail --level L` shows L and those after it.
#: mb itself emits info, warning and error; debug is there for plugins.
EVENT_LEVELS: Final = ("debug", "info", "warning", "error")


def _add_history_parsers(sub: Any) -> None:
    sub.add_parser("log", help="list builds")
    show = sub.add_parser("show", help="per-target status of a build (latest by default)")
    show.add_argument("build_id", nargs="?")
    diff = sub.add_parser("diff", help="outputs changed between two builds")
    diff.add_argument("a", nargs="?")
    diff.add_argument("b", nargs="?")
    checkout = sub.add_parser("checkout", help="put a past build's outputs back in mb-out/")
    checkout.add_argument("build_id")
    sub.add_parser("status", help="last build, failures, provisional targets, cache size, costs")
    explain = sub.add_parser("explain", help="why a target's actions ran or were cached")
    explain.add_argument("label")
    tail = sub.add_parser("tail", help="the event log, filtered")
    tail.add_argument("-f", "--follow", action="store_true")
    tail.add_argument("--type", default=None)
    tail.add_argument("--target", default=None)
    tail.add_argument("--level", choices=EVENT_LEVELS, default=None,
                      help="this level and more severe ones")
    tail.add_argument("--build", default=None)
    tail.add_argument("--json", action="store_true")
    approve = sub.add_parser("approve", help="approve a review gate (no rule makes one yet)")
    approve.add_argument("label")
    reject = sub.add_parser("reject", help="reject a review gate (no rule makes one yet)")
    reject.add_argument("label")
    reject.add_argument("--note", default=None, help="why it is rejected")


#: Allocations between two young-generation collections (Python's default: 700).
#: mb builds large graphs of small objects that live as long as the command, and
#: with the default each full collection scans all of them again: 0.59 s of a
#: clean wide10k build went to collections, 0.43 s of it to six full ones.
#: With this, one full collection ran (docs/performance.md).
GC_THRESHOLD: Final = (100_000, 20, 100)


def main(argv: Sequence[str] | None = None) -> int:
    gc.set_threshold(*GC_THRESHOLD)
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return ExitCode.USAGE_ERROR
    for flag in ("verbose", "quiet"):
        if getattr(args, f"{flag}_sub", False):
            setattr(args, flag, True)
    if getattr(args, "color_sub", None):
        args.color = args.color_sub
    args.plugins += getattr(args, "plugins_sub", [])
    previous = _sigterm_interrupts()
    try:
        return int(_dispatch(args))
    except UserError as exc:
        print(str(exc), file=sys.stderr)
        if args.verbose and exc.__cause__ is not None:  # a plugin's bug behind it
            import traceback

            traceback.print_exception(exc.__cause__, file=sys.stderr)
        return int(exc.exit_code)
    except BuildFailed:
        return ExitCode.BUILD_FAILED
    except OSError as exc:  # the machine, not the user: a full disk, a read-only folder
        if isinstance(exc, BrokenPipeError):
            return ExitCode.OK
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}; free space or fix the permissions, "
              "then run the command again", file=sys.stderr)
        if args.verbose:
            import traceback

            traceback.print_exc()
        return ExitCode.BUILD_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def _sigterm_interrupts() -> Any:
    """Make SIGTERM a Ctrl-C for the whole command (SPEC §9: both exit 130).

    Python turns SIGINT into KeyboardInterrupt but lets SIGTERM kill the
    process (exit 143), for example while a build waits for the workspace
    lock or analyses. While actions run, the build installs its own handler
    for both (stop every action, then finish the build's record) and puts
    this one back after. The previous handler is returned to be restored;
    None where handlers cannot be set (a thread other than the main one).
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_interrupt)


def _dispatch(args: argparse.Namespace) -> int:
    start = args.directory or os.getcwd()
    if args.directory and not os.path.isdir(args.directory):
        what = "not a directory" if os.path.exists(args.directory) else "no such directory"
        raise UserError(f"-C {args.directory}: {what}")
    command = args.command
    if command in ("build", "watch"):
        from mb import cmd_build

        return cmd_build.run(args, start)
    if command in ("query", "graph"):
        from mb import cmd_query

        return cmd_query.run(args, start)
    if command in ("rules", "plugins"):
        from mb import cmd_plugins

        return cmd_plugins.run(args)
    if command in ("clean", "gc"):
        from mb import cmd_maintenance

        return cmd_maintenance.run(args, start)
    if command in ("log", "show", "diff", "checkout", "status", "explain", "tail"):
        from mb import cmd_history

        return cmd_history.run(args, start)
    if command in ("approve", "reject"):
        from mb import cmd_review

        return cmd_review.run(args, start)
    raise UserError(f"unknown command {command!r}")


def run() -> NoReturn:
    """The `mb` command (console script and `python -m mb`): `main`, then exit at once.

    Tearing the interpreter down frees every module and object one at a time:
    30-45 ms after a full build, 4-5 ms after a no-op one (measured), for a
    process that is ending anyway. Everything mb writes is closed by then;
    stdout and stderr are flushed here. When anything could still need the
    ordinary shutdown (a thread still running, an `atexit` function a
    plugin registered), the exit is the ordinary one.
    """
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a reader that went away (`mb log | head`): nothing left to say
        pass
    if threading.active_count() == 1 and _atexit_functions() == 0:
        os._exit(code)
    sys.exit(code)


def _atexit_functions() -> int:
    """How many `atexit` functions are registered (CPython's count; -1 where unknown)."""
    import atexit

    count = getattr(atexit, "_ncallbacks", None)
    return count() if callable(count) else -1


if __name__ == "__main__":
    run()
