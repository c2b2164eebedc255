"""The `linux` sandbox (`mb.sandbox.linux`) and its launcher (`mb.sandbox.namespace`).

The launcher's command line and the layout it derives from it are plain
functions, tested without namespaces. The tests that run actions (real
processes, each a few tens of milliseconds) are skipped where
`namespaces_available()` is False: there mb falls back to `dir`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mb.executor import _exit_message
from mb.sandbox.base import ProcessRegistry, SandboxRequest, SandboxResult
from mb.sandbox.linux import (
    LinuxSandbox, launcher_argv, launcher_prefix, namespaces_available, worker_paths,
)
from mb.sandbox import namespace
from mb.sandbox.namespace import (
    BIND, LINK, PROC, SETUP_FAILED, SETUP_PREFIX, SYSTEM_DIRS, TMPFS, Mount, Plan, SetupError,
    layout, parse_args,
)
from test_sandbox import input_origin

needs_namespaces = pytest.mark.skipif(
    not namespaces_available(),
    reason="linux namespaces are not available here (mb falls back to the dir sandbox)")


def plan(readonly: tuple[str, ...] = (), writable: tuple[str, ...] = (),
         network: bool = False) -> Plan:
    return Plan(new_root="/nr", cwd="/", readonly=readonly, writable=writable, network=network,
                program="true", argv=("true",))


def bound(pieces: list[Mount]) -> list[str]:
    """The paths `layout` binds that are not system directories or devices."""
    return [p.path for p in pieces if p.kind == BIND and not p.path.startswith("/dev/")
            and p.path not in SYSTEM_DIRS]


# --- the launcher's command line -----------------------------------------------------


def test_parse_args_reads_every_option_and_the_command() -> None:
    parsed = parse_args(["--new-root", "/s/r.mnt", "--chdir", "/s/r", "--rw", "/s/r",
                         "--ro", "/w/a.txt",
                         "--ro", "/w/b/../c.txt", "--network", "--exec", "/usr/bin/sh",
                         "--", "sh", "-c", "--ro x"])
    assert (parsed.new_root, parsed.cwd, parsed.writable, parsed.readonly) == (
        "/s/r.mnt", "/s/r", ("/s/r",), ("/w/a.txt", "/w/c.txt"))
    assert parsed.network is True
    assert (parsed.program, parsed.argv) == ("/usr/bin/sh", ("sh", "-c", "--ro x"))


def test_parse_args_defaults_to_no_network_the_cwd_and_argv0_as_the_program(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    parsed = parse_args(["--new-root", "/n", "--", "cat", "x"])
    assert (parsed.network, parsed.cwd, parsed.program, parsed.readonly, parsed.writable) == (
        False, str(tmp_path), "cat", (), ())


@pytest.mark.parametrize("args, problem", [
    (["--new-root", "/n"], "no command after '--'"),
    (["--new-root", "/n", "--"], "no command after '--'"),
    (["--", "true"], "--new-root once"),
    (["--new-root", "/n", "--new-root", "/m", "--", "true"], "--new-root once"),
    (["--new-root", "/n", "--chdir", "/a", "--chdir", "/b", "--", "true"], "--new-root once"),
    (["--new-root", "/n", "--chdir", "a", "--", "true"], "not an absolute path: 'a'"),
    (["--new-root", "/n", "--ro", "rel/path", "--", "true"], "not an absolute path: 'rel/path'"),
    (["--new-root", "/n", "--bogus", "--", "true"], "unknown option or missing value: '--bogus'"),
    (["--new-root", "/n", "--ro"], "unknown option or missing value: '--ro'"),
])
def test_parse_args_reports_a_bad_command_line_as_a_setup_error(args: list[str],
                                                                 problem: str) -> None:
    with pytest.raises(SetupError) as caught:
        parse_args(args)
    assert str(caught.value).startswith(f"{SETUP_PREFIX} arguments: ")
    assert problem in str(caught.value)


def test_a_bad_command_line_exits_with_the_setup_status_and_one_line() -> None:
    proc = subprocess.run([*launcher_prefix(), "--new-root", "/n", "--", ], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == SETUP_FAILED
    assert proc.stderr == f"{SETUP_PREFIX} arguments: no command after '--'\n"


def test_the_executor_names_the_failed_step_of_the_launcher() -> None:
    tail = f"{SETUP_PREFIX} bind /gone: No such file or directory"
    assert _exit_message("run", SETUP_FAILED, tail) == tail
    assert _exit_message("call", SETUP_FAILED, tail) == tail
    assert _exit_message("run", SETUP_FAILED, "an action's own words") == (
        "command exited with status 125")


# --- the layout ----------------------------------------------------------------------


def test_the_layout_has_system_dirs_devices_tmp_and_proc_parents_first() -> None:
    pieces = layout(plan())
    by_path = {p.path: p for p in pieces}
    assert by_path["/usr"] == Mount(BIND, "/usr", "/usr", readonly=True)
    if os.path.islink("/bin"):
        assert by_path["/bin"] == Mount(LINK, "/bin", os.readlink("/bin"))
    assert by_path["/dev"].kind == TMPFS and by_path["/dev"].readonly
    assert by_path["/dev/null"] == Mount(BIND, "/dev/null", "/dev/null", directory=False)
    assert by_path["/dev/fd"] == Mount(LINK, "/dev/fd", "/proc/self/fd")
    assert (by_path["/dev/shm"].kind, by_path["/tmp"].kind) == (TMPFS, TMPFS)
    assert by_path["/proc"] == Mount(PROC, "/proc")
    assert not {"/home", "/root", "/work", "/var", "/run", "/sys", "/mnt"} & set(by_path)
    paths = [p.path for p in pieces]
    assert paths.index("/dev") < paths.index("/dev/null") < paths.index("/dev/shm")


def test_read_only_paths_are_bound_once_and_what_is_visible_anyway_is_not(
        tmp_path: Path) -> None:
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    for name in ("a.txt", "pkg/b.txt", "pkg/sub/c.txt", "pkg-x.txt", "root/o.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    t = str(tmp_path)
    pieces = layout(plan(
        readonly=(f"{t}/pkg/sub/c.txt", f"{t}/pkg", f"{t}/a.txt", f"{t}/pkg-x.txt",
                  f"{t}/root/o.txt", f"{t}/missing.txt", "/usr/bin/sh", "/dev/null",
                  "/proc/self/exe", f"{t}/a.txt"),
        writable=(f"{t}/root",)))
    assert bound(pieces) == [f"{t}/a.txt", f"{t}/pkg", f"{t}/pkg-x.txt", f"{t}/root"]
    by_path = {p.path: p for p in pieces}
    assert by_path[f"{t}/pkg"] == Mount(BIND, f"{t}/pkg", f"{t}/pkg", readonly=True)
    assert by_path[f"{t}/a.txt"] == Mount(BIND, f"{t}/a.txt", f"{t}/a.txt", readonly=True,
                                          directory=False)
    assert by_path[f"{t}/root"] == Mount(BIND, f"{t}/root", f"{t}/root")


def test_a_writable_path_under_a_read_only_one_is_mounted_after_it(tmp_path: Path) -> None:
    (tmp_path / "tree" / "root").mkdir(parents=True)
    t = str(tmp_path)
    pieces = layout(plan(readonly=(f"{t}/tree",), writable=(f"{t}/tree/root",)))
    assert bound(pieces) == [f"{t}/tree", f"{t}/tree/root"]


def test_with_the_network_the_file_behind_resolv_conf_is_shown(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stub = tmp_path / "run" / "stub-resolv.conf"
    stub.parent.mkdir()
    stub.write_text("nameserver 127.0.0.53\n")
    (tmp_path / "resolv.conf").symlink_to(stub)
    monkeypatch.setattr(namespace, "RESOLV_CONF", str(tmp_path / "resolv.conf"))
    assert bound(layout(plan(network=True))) == [str(stub)]
    assert bound(layout(plan())) == []


# --- what mb passes --------------------------------------------------------------------


def test_launcher_argv_shows_sources_tools_and_the_program_read_only() -> None:
    request = SandboxRequest(
        root="/ws/.mb/sandbox/s-1/mb-action_1", outputs=("p/o.txt",), argv=("sh", "-c", "x"),
        inputs={"p/a.txt": "/ws/p/a.txt", "p/g.txt": "/ws/.mb/cache/cas/ab"}, env={},
        timeout=None, network=False, readable=("/opt/tool", "/ws/p/a.txt"),
        writable=("/ws/.mb/providers",))
    argv = launcher_argv(request, "/usr/bin/sh")
    assert argv[:len(launcher_prefix())] == launcher_prefix()
    options = argv[len(launcher_prefix()):]
    assert options == (
        "--new-root", "/ws/.mb/sandbox/s-1/mb-action_1.mnt",
        "--chdir", "/ws/.mb/sandbox/s-1/mb-action_1",
        "--rw", "/ws/.mb/sandbox/s-1/mb-action_1", "--rw", "/ws/.mb/providers",
        "--ro", "/opt/tool", "--ro", "/usr/bin/sh", "--ro", "/ws/.mb/cache/cas/ab",
        "--ro", "/ws/p/a.txt", "--exec", "/usr/bin/sh", "--", "sh", "-c", "x")


def test_launcher_argv_keeps_the_network_only_when_asked_and_a_relative_program_out() -> None:
    request = SandboxRequest(root="/r", inputs={}, outputs=(), argv=("p/tool.sh",), env={},
                             timeout=None, network=True)
    options = launcher_argv(request, "p/tool.sh")[len(launcher_prefix()):]
    assert options == ("--new-root", "/r.mnt", "--chdir", "/r", "--rw", "/r", "--network",
                       "--exec", "p/tool.sh", "--", "p/tool.sh")


def test_worker_paths_cover_the_interpreter_and_mb_without_nesting(tmp_path: Path) -> None:
    import mb
    import mb.sandbox

    paths = worker_paths(str(tmp_path))

    def visible(path: str) -> bool:
        return any(path == p or path.startswith(p + os.sep) for p in paths)

    assert all(visible(p) for p in (sys.prefix, sys.base_prefix, *mb.__path__,
                                    *mb.sandbox.__path__, os.path.dirname(os.__file__)))
    assert not [p for p in paths if any(p.startswith(q + os.sep) for q in paths)]


def test_worker_paths_never_show_the_workspace_but_what_is_inside_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`python -m mb` puts the workspace on the import path; a virtual environment in it
    must still be shown, alone."""
    venv = tmp_path / "ws" / ".venv" / "lib"
    venv.mkdir(parents=True)
    for entry in (str(tmp_path / "ws"), str(tmp_path), str(venv)):
        monkeypatch.syspath_prepend(entry)
    paths = worker_paths(str(tmp_path / "ws"))
    assert str(venv) in paths
    assert not {str(tmp_path), str(tmp_path / "ws")} & set(paths)


# --- running actions -------------------------------------------------------------------


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "pkg").mkdir(parents=True)
    (ws / "pkg" / "a.txt").write_text("declared a\n")
    (ws / "pkg" / "secret.txt").write_text("not declared\n")
    return ws


def run(root: Path, argv: tuple[str, ...], inputs: dict[str, str] | None = None,
        outputs: tuple[str, ...] = (), cache_dir: str = "") -> SandboxResult:
    request = SandboxRequest(root=str(root), inputs=inputs or {}, outputs=outputs, argv=argv,
                             env={}, timeout=30, network=False, cache_dir=cache_dir)
    return LinuxSandbox(ProcessRegistry()).run(request)


@needs_namespaces
@pytest.mark.parametrize("kind", ["source", "blob"])
def test_writing_to_an_input_does_not_change_where_it_came_from(
        tmp_path: Path, workspace: Path, kind: str) -> None:
    """The counterpart of the `dir` sandbox's xfail in tests/unit/test_sandbox.py: here
    every input is a symlink to a read-only bind, for root too."""
    cache_dir = tmp_path / "cache"
    origin = input_origin(kind, workspace, cache_dir)
    result = run(tmp_path / "sandbox",
                 ("sh", "-c", "chmod u+w pkg/a.txt; echo tampered >> pkg/a.txt"),
                 {"pkg/a.txt": str(origin)}, cache_dir=str(cache_dir))
    assert result.exit_code != 0
    assert "Read-only file system" in result.stderr_tail
    assert origin.read_text() == "declared a\n"


@needs_namespaces
def test_only_declared_inputs_and_the_sandbox_are_visible(tmp_path: Path,
                                                          workspace: Path) -> None:
    root = tmp_path / "sandbox"
    script = (f"cat pkg/a.txt > out.txt; cat {workspace}/pkg/secret.txt >> out.txt; "
              f"ls {workspace}/pkg >> out.txt; ls -A {tmp_path} >> out.txt")
    result = run(root, ("sh", "-c", script), {"pkg/a.txt": str(workspace / "pkg/a.txt")},
                 outputs=("out.txt",))
    assert (root / "out.txt").read_text().split() == ["declared", "a", "a.txt", "sandbox", "ws"]
    assert "secret.txt: No such file or directory" in result.stderr_tail


@needs_namespaces
@pytest.mark.parametrize("script, code", [("exit 7", 7), ("kill -TERM $$", -15)])
def test_the_launcher_exits_as_the_action_did(tmp_path: Path, script: str, code: int) -> None:
    assert run(tmp_path / "sandbox", ("sh", "-c", script)).exit_code == code


@needs_namespaces
@pytest.mark.parametrize(("program", "content", "mode", "code", "reason"), [
    pytest.param("./absent", None, 0, 127, "No such file or directory", id="absent"),
    pytest.param("mb-no-such-program", None, 0, 127, "No such file or directory",
                 id="not-on-path"),
    pytest.param("./noexec.sh", b"echo hi\n", 0o644, 126, "Permission denied",
                 id="not-executable"),
    pytest.param("./junk", b"\x7fELF, but no program", 0o755, 126, "Exec format error",
                 id="unknown-format"),
])
def test_a_program_that_cannot_be_run_fails_with_bashs_status(
        tmp_path: Path, program: str, content: bytes | None, mode: int, code: int,
        reason: str) -> None:
    """The same statuses as the `dir` sandbox (tests/unit/test_sandbox.py), from the
    launcher; `not-on-path` is searched after the pivot, where the stdlib is gone."""
    inputs = {}
    if content is not None:
        (tmp_path / program).write_bytes(content)
        (tmp_path / program).chmod(mode)
        inputs[program[2:]] = str(tmp_path / program)
    result = run(tmp_path / "sandbox", (program,), inputs)
    assert (result.exit_code, result.stderr_tail) == (code, f"cannot run {program!r}: {reason}")


@needs_namespaces
def test_the_action_sees_only_its_own_processes(tmp_path: Path) -> None:
    root = tmp_path / "sandbox"
    result = run(root, ("sh", "-c", "ls /proc | grep -c '^[0-9]' > n.txt"), outputs=("n.txt",))
    assert result.exit_code == 0, result.stderr_tail
    # The namespace's init (the launcher), sh, ls and grep.
    assert int((root / "n.txt").read_text()) <= 4


@needs_namespaces
def test_a_failing_step_is_one_line_and_the_setup_status(tmp_path: Path) -> None:
    root = tmp_path / "sandbox"
    root.mkdir()
    (tmp_path / "sandbox.mnt").mkdir()
    proc = subprocess.run([*launcher_prefix(), "--new-root", f"{root}.mnt", "--rw",
                           f"{tmp_path}/gone", "--", "true"], cwd=root, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == SETUP_FAILED
    assert proc.stderr == f"{SETUP_PREFIX} bind {tmp_path}/gone: No such file or directory\n"
